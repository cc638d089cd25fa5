#!/usr/bin/env bash
# Register iron with a container engine, or undo exactly that.
#   deploy/register.sh podman|docker|containerd add|remove
# Called by install.sh --podman/--docker/--containerd [--uninstall]. Idempotent.
# The target files can be moved for tests:
#   IRON_PODMAN_CONF_DIR (default /etc/containers/containers.conf.d)
#   IRON_DOCKER_DAEMON_JSON (default /etc/docker/daemon.json)
#   IRON_CONTAINERD_CONFIG (default /etc/containerd/config.toml; a marked block is appended)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN_DIR=${IRON_BIN_DIR:-/usr/local/bin}
PY=${IRON_PYTHON:-/opt/iron/venv/bin/python}
[ -x "$PY" ] || PY=python3
MARK="# added by iron (deploy/register.sh)"  # first line of the podman drop-in

say() { printf '==> %s\n' "$*"; }
die() { printf 'register.sh: %s\n' "$*" >&2; exit 1; }

engine=${1:-} action=${2:-add}
case "$action" in add|remove) ;; *) die "action must be add or remove, got '$action'" ;; esac

podman() {
  local dir=${IRON_PODMAN_CONF_DIR:-/etc/containers/containers.conf.d}
  local file="$dir/iron.conf"
  if [ "$action" = remove ]; then
    rm -f "$file"; rmdir --ignore-fail-on-non-empty "$dir" 2>/dev/null || true
    say "podman: removed $file"; return
  fi
  mkdir -p "$dir"
  # A drop-in replaces a list rather than extending it, so podman's own entries are repeated.
  cat > "$file.tmp" <<EOF
$MARK
[engine]
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "iron", "iron-minimal", "iron-standard", "iron-maximum"]
runtime_supports_nocgroups = ["crun", "krun", "iron", "iron-minimal", "iron-standard", "iron-maximum"]

[engine.runtimes]
iron = ["$BIN_DIR/iron"]
iron-minimal = ["$BIN_DIR/iron-minimal"]
iron-standard = ["$BIN_DIR/iron-standard"]
iron-maximum = ["$BIN_DIR/iron-maximum"]
EOF
  mv "$file.tmp" "$file"
  say "podman: wrote $file (podman --runtime iron-maximum run ...)"
}

docker() {
  local file=${IRON_DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}
  mkdir -p "$(dirname "$file")"
  "$PY" "$HERE/docker_daemon_json.py" "$action" "$file" "$BIN_DIR"
}

containerd() {
  local config=${IRON_CONTAINERD_CONFIG:-/etc/containerd/config.toml}
  local begin="# >>> iron runtimes" end="# <<< iron runtimes"
  if [ -f "$config" ] && grep -q "^$begin" "$config"; then
    sed -i "/^$begin/,/^$end/d" "$config"
    sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$config"   # the blank line the block brought
    if [ "$action" = remove ]; then
      rm -f "$config.iron-backup"
      say "containerd: removed iron's runtimes from $config; restart containerd"
    fi
  elif [ "$action" = remove ]; then
    say "containerd: $config has no iron runtimes"
  fi
  [ "$action" = add ] || return 0
  mkdir -p "$(dirname "$config")"
  [ -s "$config" ] || printf 'version = 2\n' > "$config"
  [ -f "$config.iron-backup" ] || cp -p "$config" "$config.iron-backup"   # the file before iron
  local runc=with-runc
  grep -q 'containerd\.runtimes\.\(runc\|"runc"\)\]' "$config" && runc=
  "$PY" "$HERE/containerd_block.py" "$BIN_DIR" $runc >> "$config"
  say "containerd: added handlers iron-minimal, iron-standard, iron-maximum to $config (backup $config.iron-backup); restart containerd"
}

case "$engine" in
  podman|docker|containerd) "$engine" ;;
  *) die "engine must be podman, docker or containerd, got '$engine'" ;;
esac

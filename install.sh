#!/usr/bin/env bash
# Install iron on a Debian/Ubuntu host, then run its main job (`iron check` + `iron verify`).
# Idempotent: running it again upgrades in place and keeps /etc/iron/config.toml.
#
#   ./install.sh                 install + main job
#   ./install.sh --fix-cgroups   also mount unified-hierarchy controllers as v1 (crun 1.8 quirk)
#   ./install.sh --no-verify     install only
#   ./install.sh --podman | --docker | --containerd   register iron with that engine
#   ./install.sh --uninstall [--podman|--docker|--containerd]   undo exactly that
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${IRON_PREFIX:-/opt/iron}
BIN_DIR=${IRON_BIN_DIR:-/usr/local/bin}
LIB_DIR=${IRON_LIB_DIR:-/usr/local/lib/iron}
ETC_DIR=/etc/iron
NAMES=(iron iron-minimal iron-standard iron-maximum)

fix_cgroups=0 verify=1 uninstall=0 engines=()
for arg in "$@"; do
  case "$arg" in
    --fix-cgroups) fix_cgroups=1 ;;
    --no-verify) verify=0 ;;
    --uninstall) uninstall=1 ;;
    --podman|--docker|--containerd) engines+=("${arg#--}") ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

if [ ${#engines[@]} -gt 0 ]; then
  for engine in "${engines[@]}"; do
    bash "$HERE/deploy/register.sh" "$engine" "$([ $uninstall = 1 ] && echo remove || echo add)"
  done
  exit 0
fi

if [ $uninstall = 1 ]; then
  for name in "${NAMES[@]}"; do rm -f "$BIN_DIR/$name"; done
  rm -rf "$PREFIX" "$LIB_DIR"
  say "removed iron (kept $ETC_DIR and /var/log/iron)"
  exit 0
fi

need_pkgs=()
command -v crun >/dev/null || need_pkgs+=(crun)
command -v nft >/dev/null || need_pkgs+=(nftables)
command -v gcc >/dev/null || need_pkgs+=(gcc libc6-dev)
command -v make >/dev/null || need_pkgs+=(make)
[ -e /usr/include/stdio.h ] || need_pkgs+=(libc6-dev)
{ [ -x /bin/busybox ] && ! file -L /bin/busybox 2>/dev/null | grep -q dynamically; } || need_pkgs+=(busybox-static)
ldconfig -p | grep -q libseccomp.so.2 || need_pkgs+=(libseccomp2)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v file >/dev/null || need_pkgs+=(file)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing ${need_pkgs[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Every create and exec starts Python, so its start-up is on the hot path. An interpreter
# with libpython linked in starts 3-10 ms sooner than one loading a shared libpython
# (relocations and page faults), so prefer it; IRON_PYTHON overrides the choice.
usable() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
static_libpython() { "$1" -c 'import sys, sysconfig; sys.exit(sysconfig.get_config_var("Py_ENABLE_SHARED") != 0)'; }
pick_python() {
  local fallback="" c
  for c in /usr/bin/python3 "$(command -v python3 || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && usable "$c" || continue
    static_libpython "$c" && { echo "$c"; return; }
    fallback=${fallback:-$c}
  done
  echo "$fallback"
}
if [ -z "${IRON_PYTHON:-}" ] && [ -x /usr/bin/python3 ] && ! usable /usr/bin/python3; then
  say "installing python3-venv (apt), for the system Python"   # else another python3 is used
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3-venv >/dev/null; } || say "python3-venv not installed; using another python3 if there is one"
fi
PYTHON=${IRON_PYTHON:-$(pick_python)}
[ -n "$PYTHON" ] || die "Python >= 3.11 with the venv module needed (apt-get install python3-venv)"
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
usable "$PYTHON" || die "Python >= 3.11 with the venv module needed ($PYTHON)"

say "python venv in $PREFIX/venv ($PYTHON)"
base=$("$PREFIX/venv/bin/python3" -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null || true)
[ "$base" = "$(realpath "$PYTHON")" ] || "$PYTHON" -m venv --clear "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade "$HERE"
SITE=$("$PREFIX/venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

say "building the Landlock helper"
make -s -C "$HERE/hooks/landlock" all
install -D -m 0755 "$HERE/hooks/landlock/build/iron-landlock" "$LIB_DIR/iron-landlock"

say "building the network hook"
make -s -C "$HERE/hooks/nethook" all
install -D -m 0755 "$HERE/hooks/nethook/build/iron-nethook" "$LIB_DIR/iron-nethook.tmp"
mv -f "$LIB_DIR/iron-nethook.tmp" "$LIB_DIR/iron-nethook"

say "building the threat probes for iron verify"
make -s -C "$HERE/tests/probes" all
install -D -m 0755 "$HERE/tests/probes/build/iron-probe" "$LIB_DIR/iron-probe"

# `iron` is a small C launcher: pass-through commands (state, start, kill, delete, …) go
# straight to crun; create/run/exec and iron's own commands start the Python shim, which
# skips site processing (-S) and the environment (-I).
say "building the launcher"
mkdir -p "$PREFIX/bin" "$PREFIX/lib"
cat > "$PREFIX/lib/iron-shim.py.tmp" <<PY
"""iron's Python shim, started by the launcher as: python3 -IS iron-shim.py ARGV0 ARGS…"""
import sys
sys.path.insert(0, "$SITE")
from iron.shim.main import main
sys.exit(main(sys.argv[1:]))
PY
mv -f "$PREFIX/lib/iron-shim.py.tmp" "$PREFIX/lib/iron-shim.py"
make -s -B -C "$HERE/shim/launcher" PYTHON="$PREFIX/venv/bin/python3" ENTRY="$PREFIX/lib/iron-shim.py"
install -m 0755 "$HERE/shim/launcher/build/iron" "$PREFIX/bin/iron.tmp"
mv -f "$PREFIX/bin/iron.tmp" "$PREFIX/bin/iron"
for name in "${NAMES[@]}"; do
  # one binary; `iron-MODE` pins MODE by the name it is called by
  [ "$name" = iron ] || ln -sfn iron "$PREFIX/bin/$name"
  ln -sfn "$PREFIX/bin/$name" "$BIN_DIR/$name"
done

mkdir -p "$ETC_DIR/profiles" /var/log/iron
if [ ! -e "$ETC_DIR/config.toml" ]; then
  say "writing $ETC_DIR/config.toml"
  cat > "$ETC_DIR/config.toml" <<TOML
# iron's settings. Every key is optional; these are the defaults.
# runtime = "/usr/bin/crun"          # the delegate; empty: crun on PATH
default_mode = "standard"
landlock_helper = "$LIB_DIR/iron-landlock"
network_hook = "$LIB_DIR/iron-nethook"
audit_log = "/var/log/iron/audit.jsonl"
audit_on_failure = "auto"           # auto: fail closed in maximum, warn otherwise
allow_annotation_lower = false      # may io.iron.mode lower the pinned mode?
allow_fs_write_annotation = false   # may io.iron.fs.write add writable paths?
allow_network_annotation = false    # may io.iron.network.allow add destinations?
host_network = "refuse"             # maximum with host networking: refuse | isolate
TOML
fi

controllers=$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || true)
if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ -n "$controllers" ]; then
  if [ $fix_cgroups = 1 ]; then
    for c in $controllers; do
      say "mounting the $c controller as a v1 hierarchy (crun 1.8 refuses it in the unified one)"
      mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    done
  else
    echo "warning: cgroup hybrid mode with controllers in the unified hierarchy ($controllers):" >&2
    echo "         crun 1.8 refuses to create containers; rerun with --fix-cgroups" >&2
  fi
fi

say "installed: $(iron --version | head -1)"
if [ $verify = 1 ]; then
  iron check || true
  echo
  iron verify
fi

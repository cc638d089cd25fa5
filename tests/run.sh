#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: installs what the tests need (apt, pip),
# installs iron from this checkout, then runs unit, integration, escape and e2e tests.
#   sudo tests/run.sh [pytest args…]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "tests/run.sh: run as root" >&2; exit 1; }

PKGS=(crun runc podman containerd docker.io nftables iproute2 busybox-static libseccomp-dev libseccomp2
      gcc make libc6-dev file containernetworking-plugins netavark aardvark-dns conmon catatonit
      uidmap iptables fuse-overlayfs)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# crun 1.8 refuses a hybrid cgroup host whose unified hierarchy holds controllers; the
# install step fixes it when asked (and says so otherwise).
bash install.sh --no-verify --fix-cgroups

VENV=/opt/iron/venv
"$VENV/bin/pip" install -q pytest hypothesis referencing grpcio
exec "$VENV/bin/python" -m pytest -ra -p no:cacheprovider tests "$@"

#!/usr/bin/env bash
# Installs the Debian packages the test tiers need, idempotently: packages already
# installed are not touched, so a prepared machine pays nothing. Needs root for
# apt-get when something is missing.
#
# Usage: tests/tools/setup_host.sh TIER...   (unit, integration, vm, kernel, fleet, demo)
set -euo pipefail

declare -A PACKAGES=(
  [unit]=""
  [integration]="fuse3 libfuse3-dev pkg-config gcc make libc6-dev systemd dbus dbus-user-session util-linux bsdutils procps tmux strace"
  [demo]="fuse3 libfuse3-dev pkg-config gcc make libc6-dev systemd dbus dbus-user-session util-linux bsdutils procps"
  [vm]="qemu-system-x86 debootstrap e2fsprogs debian-archive-keyring systemd kmod util-linux tar"
  [kernel]="qemu-system-x86 build-essential bc bison flex libssl-dev libelf-dev dwarves cpio kmod busybox-static debian-archive-keyring xz-utils e2fsprogs debootstrap"
  [fleet]="etcd-server etcd-client openssl"
)

wanted=()
for tier in "$@"; do
  if [[ -z "${PACKAGES[$tier]+set}" ]]; then
    echo "setup_host: unknown tier '$tier' (known: ${!PACKAGES[*]})" >&2
    exit 2
  fi
  for pkg in ${PACKAGES[$tier]}; do wanted+=("$pkg"); done
done

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# De-duplicate.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')

if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "setup_host: these packages are missing and installing them needs root: ${missing[*]}" >&2
  echo "setup_host: run 'sudo apt-get install ${missing[*]}' or run the tests as root." >&2
  exit 1
fi
echo "setup_host: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=120 -o Acquire::Retries=3)
if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/tmp/setup_host_apt.log 2>&1; then
  apt-get "${apt_opts[@]}" update >/tmp/setup_host_apt_update.log 2>&1 || true
  if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >>/tmp/setup_host_apt.log 2>&1; then
    tail -n 30 /tmp/setup_host_apt.log >&2
    echo "setup_host: apt-get install failed (log: /tmp/setup_host_apt.log)" >&2
    exit 1
  fi
fi

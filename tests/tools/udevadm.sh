#!/usr/bin/env bash
# Prints the path of a udevadm for checking udev rules (tests/integration/
# devices_udev_rules_test.ts): the installed one if the udev package is there,
# otherwise udevadm from Debian's udev package, downloaded and unpacked (not
# installed: installing udev would upgrade systemd on a shared machine) into
# /var/cache/liveupdate-agent/udevadm/<version>/. Debian's udevadm links no
# systemd library, so it runs on its own. Needs apt (to download) the first time.
set -euo pipefail

for candidate in /usr/bin/udevadm /bin/udevadm; do
  if [[ -x $candidate ]]; then
    echo "$candidate"
    exit 0
  fi
done

version=$(apt-cache policy udev 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [[ -z $version || $version == "(none)" ]]; then
  apt-get -o DPkg::Lock::Timeout=120 update >/dev/null 2>&1 || true
  version=$(apt-cache policy udev 2>/dev/null | awk '/Candidate:/ { print $2 }')
fi
if [[ -z $version || $version == "(none)" ]]; then
  echo "udevadm.sh: apt knows no udev package; cannot get udevadm" >&2
  exit 1
fi
cache=/var/cache/liveupdate-agent/udevadm/${version//[^A-Za-z0-9.+~-]/_}
if [[ -x $cache/root/bin/udevadm ]]; then
  echo "$cache/root/bin/udevadm"
  exit 0
fi

mkdir -p "$(dirname "$cache")"
work=$(mktemp -d "$(dirname "$cache")/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download "udev=$version" >download.log 2>&1) || {
  cat "$work/download.log" >&2
  echo "udevadm.sh: apt-get download udev=$version failed" >&2
  exit 1
}
mkdir "$work/root"
dpkg-deb -x "$work"/udev_*.deb "$work/root"
if [[ ! -x $work/root/bin/udevadm ]]; then
  echo "udevadm.sh: the udev package has no bin/udevadm" >&2
  exit 1
fi
"$work/root/bin/udevadm" --version >/dev/null
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
rm -f "$cache"/udev_*.deb "$cache/download.log"
echo "$cache/root/bin/udevadm"

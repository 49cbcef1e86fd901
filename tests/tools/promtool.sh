#!/usr/bin/env bash
# Prints the path of a promtool for checking the agent's metrics file
# (tests/integration/metrics_test.ts): the installed one if there is one, otherwise
# promtool from Debian's prometheus package, downloaded and unpacked (not installed:
# installing would add a Prometheus server and its service to a shared machine) into
# /var/cache/liveupdate-agent/promtool/<version>/. promtool is a static Go binary, so
# it runs on its own. Needs apt (to download) the first time.
set -euo pipefail

if command -v promtool >/dev/null; then
  command -v promtool
  exit 0
fi

version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [[ -z $version || $version == "(none)" ]]; then
  apt-get -o DPkg::Lock::Timeout=120 update >/dev/null 2>&1 || true
  version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')
fi
if [[ -z $version || $version == "(none)" ]]; then
  echo "promtool.sh: apt knows no prometheus package; cannot get promtool" >&2
  exit 1
fi
cache=/var/cache/liveupdate-agent/promtool/${version//[^A-Za-z0-9.+~-]/_}
if [[ -x $cache/promtool ]]; then
  echo "$cache/promtool"
  exit 0
fi

mkdir -p "$(dirname "$cache")"
work=$(mktemp -d "$(dirname "$cache")/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download "prometheus=$version" >download.log 2>&1) || {
  cat "$work/download.log" >&2
  echo "promtool.sh: apt-get download prometheus=$version failed" >&2
  exit 1
}
mkdir "$work/root"
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
if [[ ! -x $work/root/usr/bin/promtool ]]; then
  echo "promtool.sh: the prometheus package has no usr/bin/promtool" >&2
  exit 1
fi
mv "$work/root/usr/bin/promtool" "$work/promtool"
rm -rf "$work/root" "$work"/prometheus_*.deb "$work/download.log"
"$work/promtool" --version >/dev/null
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
echo "$cache/promtool"

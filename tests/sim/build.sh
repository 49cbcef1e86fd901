#!/usr/bin/env bash
# Builds the simulated LUO kernel (tests/sim/*.c, FUSE low-level API) into
# .build/sim/luo-sim. Skips the build when the sources, this script and the
# compiler flags are unchanged since the last one. Needs gcc, pkg-config and
# libfuse3-dev (tests/tools/setup_host.sh integration).
set -euo pipefail
cd "$(dirname "$0")/../.."

out=.build/sim
bin=$out/luo-sim
sources=(tests/sim/*.c)
flags=(-O2 -g -std=gnu11 -Wall -Wextra -Werror)

if ! command -v pkg-config >/dev/null || ! pkg-config --exists fuse3; then
  echo "build.sh: pkg-config or libfuse3-dev is missing; run: bash tests/tools/setup_host.sh integration" >&2
  exit 1
fi
fuse=$(pkg-config --cflags --libs fuse3)

stamp=$( { cat "${sources[@]}" tests/sim/*.h tests/sim/build.sh; echo "${flags[*]} $fuse"; gcc --version | head -1; } | sha256sum | cut -d' ' -f1)
if [[ -x $bin && -f $bin.stamp && $(cat "$bin.stamp") == "$stamp" ]]; then
  exit 0
fi

mkdir -p "$out"
tmp=$(mktemp "$out/luo-sim.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# shellcheck disable=SC2086 # pkg-config output is a list of flags
gcc "${flags[@]}" -o "$tmp" "${sources[@]}" $fuse
chmod 755 "$tmp"
mv -f "$tmp" "$bin"
echo "$stamp" > "$bin.stamp.tmp" && mv -f "$bin.stamp.tmp" "$bin.stamp"
echo "build.sh: built $bin"

#!/usr/bin/env bash
# Builds the mainline LUO test kernel (Linux 7.3 with KHO + LUO) from Debian's
# linux-source-7.3 (trixie-backports) and caches it outside the repository:
#
#   $CACHE/kernel/<source-version>-<fragment-sha256[:12]>/
#       bzImage  config  liveupdate.h  liveupdate-abi  source-version  kernel-release
#       fragment  build.log  build-seconds
#
# liveupdate-abi holds the kernel's handover compatible strings, read from its
# source (include/linux/kho/abi/*.h), in the agent's metadata format
# (agent/compat/metadata.ts):
#   KHO_COMPATIBLE=kho-v4  LUO_COMPATIBLE=luo-v5  LUO_FILE_HANDLERS=memfd-v2
# It is what the agent's compatibility check reads for both kernels. (Entries
# cached before this format hold "kho=…", "luo=…", "file-handler=…" lines;
# tests/mainline/kernel.ts reads both.)
#
# The source is fetched with a PRIVATE apt source list (the host's own sources and
# lists stay untouched). Runs concurrently with itself safely: a lock per cache
# entry, so a second run waits and then finds the finished kernel. Prints the
# cache directory as its last line of stdout.
#
# Usage: tests/mainline/build_kernel.sh [--print-key]
# Environment: LIVEUPDATE_CACHE (default /var/cache/liveupdate-agent),
#              KERNEL_JOBS (default 2).
# Needs root (apt-get), network to deb.debian.org (cold only) and the packages of
# the "kernel" set in tests/tools/setup_host.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fragment="$here/kernel.config"
cache=${LIVEUPDATE_CACHE:-/var/cache/liveupdate-agent}/kernel
jobs=${KERNEL_JOBS:-2}
package=linux-source-7.3
suite=trixie-backports

log() { echo "build_kernel: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/download"

# --- The private apt view of trixie-backports -----------------------------------
sources="$cache/apt/sources.list"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$sources"
apt_opts=(
  -o "Dir::Etc::SourceList=$sources"
  -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$cache/apt/lists"
  -o "Dir::Cache=$cache/apt/cache"
  -o "Dir::Etc::Preferences=/nonexistent"
  -o "Dir::Etc::PreferencesParts=/nonexistent"
  -o "APT::Default-Release=$suite"
  -o Acquire::Retries=3
  -o Debug::NoLocking=1
)

# Refresh the private lists at most once a day (a cached run stays offline).
(
  flock 9
  stamp="$cache/apt/updated"
  if [[ ! -e "$stamp" ]] || [[ -n $(find "$stamp" -mmin +1440) ]]; then
    log "refreshing the private apt lists ($suite)"
    apt-get "${apt_opts[@]}" update >"$cache/apt/update.log" 2>&1 ||
      { tail -n 20 "$cache/apt/update.log" >&2; die "apt-get update (private $suite list) failed"; }
    touch "$stamp"
  fi
) 9>"$cache/apt/.lock"

version=$(apt-cache "${apt_opts[@]}" show "$package" 2>/dev/null |
  awk '/^Version:/ { print $2; exit }')
[[ -n "$version" ]] || die "no '$package' in $suite (see $cache/apt/update.log)"
fragment_hash=$(sha256sum "$fragment" | cut -c1-12)
key="$version-$fragment_hash"
out="$cache/$key"
if [[ "${1:-}" == "--print-key" ]]; then
  echo "$key"
  exit 0
fi

# The handover compatible strings of the source tree $1, written to $2.
write_abi_metadata() {
  local src=$1 out=$2 kho luo memfd
  kho=$(sed -n 's/^#define KHO_FDT_COMPATIBLE[[:space:]]*"\(.*\)"/\1/p' "$src/include/linux/kho/abi/kexec_handover.h")
  luo=$(sed -n 's/^#define LUO_ABI_COMPATIBLE[[:space:]]*"\(.*\)"/\1/p' "$src/include/linux/kho/abi/luo.h")
  memfd=$(sed -n 's/^#define MEMFD_LUO_FH_COMPATIBLE[[:space:]]*"\(.*\)"/\1/p' "$src/include/linux/kho/abi/memfd.h")
  [[ -n "$kho" && -n "$luo" && -n "$memfd" ]] ||
    die "cannot read the handover compatible strings from $src/include/linux/kho/abi/"
  printf '# Handover formats of this kernel, read by liveupdate-agent\n' >"$out"
  printf 'KHO_COMPATIBLE=%s\nLUO_COMPATIBLE=%s\nLUO_FILE_HANDLERS=%s\n' "$kho" "$luo" "$memfd" >>"$out"
}

exec 8>"$cache/.lock-$key"
if ! flock -n 8; then
  log "another run is building $key; waiting for it"
  flock 8
fi
if [[ -s "$out/bzImage" && ! -s "$out/liveupdate-abi" ]]; then
  # Entries built before the metadata existed: read it from the source package.
  deb=$(find "$cache/download" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
  [[ -n "$deb" ]] || die "$out lacks liveupdate-abi and the source package is not cached"
  meta=$(mktemp -d)
  trap 'rm -rf "$meta"' EXIT
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$meta" --wildcards '*/linux-source-*.tar.*'
  tarball=$(find "$meta" -name 'linux-source-*.tar.*' | head -n 1)
  tar -x -C "$meta" -f "$tarball" --wildcards '*/include/linux/kho/abi/*.h'
  write_abi_metadata "$(find "$meta" -maxdepth 1 -type d -name 'linux-source-*' | head -n 1)" "$out/liveupdate-abi"
  rm -rf "$meta"
fi
if [[ -s "$out/bzImage" ]]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

started=$(date +%s)

# --- Fetch the source package ----------------------------------------------------
deb=$(find "$cache/download" -maxdepth 1 -name "${package}_${version//:/%3a}_*.deb" | head -n 1)
if [[ -z "$deb" ]]; then
  log "downloading $package $version"
  (cd "$cache/download" && apt-get "${apt_opts[@]}" download "$package=$version" >&2) ||
    die "apt-get download $package=$version failed"
  deb=$(find "$cache/download" -maxdepth 1 -name "${package}_*.deb" -newer "$sources" | head -n 1)
  [[ -n "$deb" ]] || deb=$(find "$cache/download" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
fi
[[ -n "$deb" ]] || die "the downloaded $package package is missing from $cache/download"

# --- Unpack ----------------------------------------------------------------------
work="$cache/build-$key"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
log "unpacking $(basename "$deb")"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards '*/linux-source-*.tar.*'
tarball=$(find "$work" -name 'linux-source-*.tar.*' | head -n 1)
[[ -n "$tarball" ]] || die "no source tarball inside $deb"
tar -x -C "$work" -f "$tarball"
rm -f "$tarball"
src=$(find "$work" -maxdepth 1 -type d -name 'linux-source-*' | head -n 1)
[[ -n "$src" ]] || die "no linux-source-* directory after unpacking $deb"

# --- Configure: the fragment over the Kconfig defaults -----------------------------
grep -E '^(CONFIG_|# CONFIG_)' "$fragment" >"$src/.config"
make -C "$src" olddefconfig >"$work/olddefconfig.log" 2>&1 ||
  { cat "$work/olddefconfig.log" >&2; die "make olddefconfig failed"; }
lost=()
while IFS= read -r line; do
  case "$line" in
    CONFIG_*) grep -qxF -- "$line" "$src/.config" || lost+=("$line") ;;
    "# CONFIG_"*" is not set")
      name=${line#\# }
      name=${name%% *}
      if grep -qE "^$name=" "$src/.config"; then lost+=("$line"); fi
      ;;
  esac
done < <(grep -E '^(CONFIG_|# CONFIG_)' "$fragment")
if ((${#lost[@]} > 0)); then
  log "these lines of $fragment did not survive 'make olddefconfig' (missing dependency or renamed option):"
  printf '  %s\n' "${lost[@]}" >&2
  for line in "${lost[@]}"; do
    name=${line#\# }
    name=${name%%[= ]*}
    log "  now: $(grep -E "^(# )?$name[= ]" "$src/.config" || echo "$name absent")"
  done
  exit 1
fi

# --- Build -----------------------------------------------------------------------
log "building bzImage with -j$jobs (6-8 minutes on an idle 2-core machine)"
if ! make -C "$src" -j"$jobs" bzImage >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  die "kernel build failed (full log: $work/build.log is removed; rerun to reproduce)"
fi

# --- Publish atomically ------------------------------------------------------------
staging="$cache/.staging-$key"
rm -rf "$staging"
mkdir -p "$staging"
cp "$src/arch/x86/boot/bzImage" "$staging/bzImage"
cp "$src/.config" "$staging/config"
cp "$src/include/uapi/linux/liveupdate.h" "$staging/liveupdate.h"
write_abi_metadata "$src" "$staging/liveupdate-abi"
cp "$fragment" "$staging/fragment"
echo "$version" >"$staging/source-version"
make -s -C "$src" kernelrelease >"$staging/kernel-release" 2>/dev/null || true
tail -n 20 "$work/build.log" >"$staging/build.log"
echo "$(($(date +%s) - started))" >"$staging/build-seconds"
rm -rf "$out"
mv "$staging" "$out"
log "built $key in $(cat "$out/build-seconds") s: $out"
echo "$out"

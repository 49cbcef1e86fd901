#!/usr/bin/env bash
# Builds the Debian bookworm root disk for the mainline systemd scenarios and
# caches it outside the repository:
#
#   $CACHE/mainline-debian/<sha256 of this script, 12>/disk.img   (ext4, 2 GiB)
#
# systemd as PID 1, udev, D-Bus, kexec-tools (for `kexec -s -l` and the kexec_load
# trap), no kernel package: the guest boots the 7.3 test kernel directly
# (root=/dev/vda, no initramfs; virtio-blk and ext4 are built in). The agent,
# deno and the tests come on a second disk built per run and mounted at
# /opt/liveupdate (see debian_disk.ts); luo-mainline-e2e.service runs the
# scenario driver from there. Locked, so concurrent runs build once. Prints the
# image path as its last line.
#
# Needs root, debootstrap, e2fsprogs and network to deb.debian.org (cold only).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${LIVEUPDATE_CACHE:-/var/cache/liveupdate-agent}/mainline-debian
mirror=${LIVEUPDATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
key=$(cat "$0" "$here/debian/luo-mainline-e2e.service" | sha256sum | cut -c1-12)
out="$cache/$key"

log() { echo "debian_image: $*" >&2; }

mkdir -p "$cache"
exec 8>"$cache/.lock-$key"
flock 8
if [[ -s "$out/disk.img" ]]; then
  log "cached: $out/disk.img"
  echo "$out/disk.img"
  exit 0
fi

started=$(date +%s)
work="$cache/build-$key"
rm -rf "$work"
mkdir -p "$work"
trap 'umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
log "debootstrap bookworm (minbase + systemd, udev, dbus, kexec-tools)"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,udev,dbus,kexec-tools,procps,e2fsprogs \
  bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
root="$work/root"

# A fast, quiet serial-console boot.
for unit in serial-getty@ttyS0.service getty@tty1.service kexec.service kexec-load.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
  e2scrub_reap.service fstrim.timer systemd-pstore.service systemd-timesyncd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
echo "luo-guest" >"$root/etc/hostname"
printf 'root::0:0:root:/root:/bin/bash\n' >"$root/etc/passwd.new"
sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
rm -f "$root/etc/passwd.new"
cat >"$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,errors=remount-ro 0 1
/dev/vdb /opt/liveupdate ext4 rw 0 2
FSTAB
mkdir -p "$root/opt/liveupdate"
# kexec-tools' shutdown loader off (the scenario turns it on to show the trap).
echo 'LOAD_KEXEC=false' >"$root/etc/default/kexec"
# The scenario driver.
install -m 0644 "$here/debian/luo-mainline-e2e.service" "$root/etc/systemd/system/"
ln -sf /etc/systemd/system/luo-mainline-e2e.service \
  "$root/etc/systemd/system/multi-user.target.wants/luo-mainline-e2e.service"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*

log "mkfs.ext4 -d (2 GiB)"
mkfs.ext4 -q -F -L luo-root -d "$root" "$work/disk.img" 2G
mkdir -p "$out"
mv "$work/disk.img" "$out/disk.img"
log "built in $(($(date +%s) - started)) s: $out/disk.img"
echo "$out/disk.img"

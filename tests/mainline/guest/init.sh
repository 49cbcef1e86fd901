#!/bin/busybox sh
# /init of the mainline test guest (an initramfs built by tests/mainline/initramfs.ts).
# Mounts what the agent needs, mounts the state disk, runs the guest program named
# on the kernel command line (luotest.program=…), and powers off. Every line the
# host parses starts with "@@LUO".
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /var/lib/liveupdate /run/liveupdate
if [ -b /dev/vda ]; then
  mount -t ext4 /dev/vda /var/lib/liveupdate || echo "@@LUO-INIT state disk not mountable"
fi
program=
for word in $(cat /proc/cmdline); do
  case "$word" in
    luotest.program=*) program=${word#luotest.program=} ;;
  esac
done
echo "@@LUO-INIT up $(cut -d' ' -f1 /proc/uptime)"
export HOME=/root DENO_DIR=/deno-dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 TERM=dumb
cd /repo
if [ -n "$program" ]; then
  /usr/bin/deno run --allow-all --cached-only --no-check --no-lock "$program"
  echo "@@LUO-EXIT $?"
else
  echo "@@LUO-EXIT 127 no luotest.program= on the command line"
fi
sync
umount /var/lib/liveupdate 2>/dev/null
poweroff -f

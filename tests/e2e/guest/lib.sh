# shellcheck shell=bash
# Helpers for the VM tier's guest side, sourced by the scenario driver
# (/usr/lib/luo-e2e/run) and by every scenario boot script. Installed as
# /usr/lib/luo-e2e/lib.sh.
#
# Records go to the host over a virtio-serial port, one line each, tab-separated:
#   KIND <tab> BOOT <tab> NAME <tab> VALUE
# KIND is boot, step, value, check, reboot or verdict (tests/e2e/channel.ts
# parses them). A failed check is also appended to $E2E_STATE/failures, which
# survives the kexec; the last boot's verdict is "pass" only when it is empty.

E2E_EVENTS=/dev/virtio-ports/org.liveupdate.e2e.events
E2E_JOURNAL=/dev/virtio-ports/org.liveupdate.e2e.journal
E2E_STATE=/var/lib/luo-e2e
E2E_SCENARIO=/usr/lib/luo-e2e/scenario
E2E_BOOT=${E2E_BOOT:-0}

LUO=/sys/kernel/liveupdate
LUO_CONTROL=/sys/kernel/debug/luo_rfc1
LUO_PARAMS=/sys/module/luo_rfc1/parameters
LUO_BUS=/sys/bus/luo_e2e/devices
LUO_LEGACY_BUS=/sys/bus/luo_e2e_legacy/devices
LUO_ROOT_DEVICE=/sys/devices/luo_e2e

_e2e_flat() { printf '%s' "$*" | tr '\t\n' '  ' | cut -c1-2000; }

# emit KIND NAME VALUE...
emit() {
  local kind=$1 name=$2
  shift 2
  printf '%s\t%s\t%s\t%s\n' "$kind" "$E2E_BOOT" "$(_e2e_flat "$name")" "$(_e2e_flat "$*")" >>"$E2E_EVENTS"
}

# Seconds since this boot's kernel started (the guest's own clock).
e2e_uptime() { cut -d' ' -f1 /proc/uptime; }

# step NAME: progress; the host timestamps its arrival.
step() {
  echo "luo-e2e: boot $E2E_BOOT: $1"
  emit step "$1" "$(e2e_uptime)"
}

# value NAME TEXT...: a value for the host's checks and the report.
value() {
  local name=$1
  shift
  emit value "$name" "$*"
}

_e2e_failed() {
  echo "boot $E2E_BOOT: $1: $2" >>"$E2E_STATE/failures"
  echo "luo-e2e: boot $E2E_BOOT: CHECK FAILED $1: $2" >&2
}

# pass NAME / fail NAME WHY: record a check's outcome.
pass() { emit check "$1" ok; }
fail() {
  emit check "$1" "fail $2"
  _e2e_failed "$1" "$2"
}

# check NAME CMD...: runs CMD; a non-zero exit fails the check (with its output).
check() {
  local name=$1 output
  shift
  if output=$("$@" 2>&1); then pass "$name"; else fail "$name" "'$*' exited $?: $output"; fi
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}

# expect_match NAME PATTERN TEXT (a bash glob pattern)
expect_match() {
  # shellcheck disable=SC2053
  if [[ $3 == $2 ]]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}

# The errno name behind a strerror text (what the shell prints for a failed write).
errno_of() {
  case "$1" in
  *"Invalid argument"*) echo EINVAL ;;
  *"Device or resource busy"*) echo EBUSY ;;
  *"Permission denied"*) echo EACCES ;;
  *"Resource temporarily unavailable"*) echo EAGAIN ;;
  *"Input/output error"*) echo EIO ;;
  *"No data available"*) echo ENODATA ;;
  *"Operation not permitted"*) echo EPERM ;;
  *"No such file or directory"*) echo ENOENT ;;
  *"Cannot allocate memory"*) echo ENOMEM ;;
  *"No such device"*) echo ENODEV ;;
  *) echo "UNKNOWN($1)" ;;
  esac
}

# write_result FILE VALUE: writes VALUE and a newline in one write(2), as the agent
# does; prints "ok" or the errno name.
write_result() {
  local error
  if error=$({ printf '%s\n' "$2" >"$1"; } 2>&1); then echo ok; else errno_of "$error"; fi
}

# read_result FILE: prints the file's first line, or the errno name of a failed read.
read_result() {
  local output
  if output=$(head -n1 "$1" 2>&1); then echo "$output"; else errno_of "$output"; fi
}

# expect_write NAME FILE VALUE RESULT: RESULT is "ok" or an errno name.
expect_write() {
  expect_eq "$1" "$4" "$(write_result "$2" "$3")"
}

luo_state() { cat "$LUO/state"; }

# flags DEVICE...: "name:requested/preserved/reclaimed" for each module device.
flags() {
  local device dir out=()
  for device in "$@"; do
    dir=$(luo_device_dir "$device")
    out+=("$device:$(cat "$dir/liveupdate/requested")$(cat "$dir/liveupdate/preserved")$(cat "$dir/liveupdate/reclaimed")")
  done
  echo "${out[*]}"
}

# The sysfs directory of a module device (on either bus, or the root device).
luo_device_dir() {
  if [ "$1" = luo_e2e ]; then
    echo "$LUO_ROOT_DEVICE"
  elif [ -e "$LUO_BUS/$1" ]; then
    readlink -f "$LUO_BUS/$1"
  else
    readlink -f "$LUO_LEGACY_BUS/$1"
  fi
}

# wait_for TIMEOUT_S CMD...: retries CMD every 0.2 s until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# timed NAME CMD...: runs CMD, records its duration as value "NAME-seconds";
# returns CMD's status.
timed() {
  local name=$1 start end status
  shift
  start=$(date +%s.%N)
  "$@"
  status=$?
  end=$(date +%s.%N)
  value "$name-seconds" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')"
  return "$status"
}

# kexec_load_self ARGS...: loads the running kernel and initrd for a kexec with
# kexec_file_load, reusing the command line plus "luo_e2e.via=kexec ARGS"
# (the marker tells boot_kind that the next boot came through kexec).
kexec_load_self() {
  local release
  release=$(uname -r)
  kexec -s -l "/boot/vmlinuz-$release" --initrd="/boot/initrd.img-$release" \
    --reuse-cmdline --append="luo_e2e.via=kexec $*"
}

# boot_kind: "kexec" when this kernel was started by kexec (its command line has
# the marker), else "cold".
boot_kind() {
  local token kind=cold
  for token in $(cat /proc/cmdline); do
    [ "$token" = luo_e2e.via=kexec ] && kind=kexec
  done
  echo "$kind"
}

# reboot_via kexec|reboot: records the request, asks systemd, and waits to be stopped.
reboot_via() {
  emit reboot "$1" "$(e2e_uptime)"
  sync
  systemctl --no-block "$1"
  exec sleep infinity
}

# start_and_await_reboot UNIT: starts UNIT, which should end in a kexec or a
# reboot (the agent's liveupdate-prepare.service), and waits to be stopped by
# that shutdown. Records a "reboot" (the host times from here to the next
# boot). Fails (and returns 1) when the unit fails, or when it finished and no
# shutdown began within 120 s.
start_and_await_reboot() {
  local unit=$1 state finished=""
  emit reboot kexec "$(e2e_uptime)"
  systemctl --no-block start "$unit"
  for ((;;)); do
    [ "$(systemctl is-system-running 2>/dev/null)" = stopping ] && exec sleep infinity
    state=$(systemctl show -P ActiveState "$unit")
    if [ "$state" = failed ]; then
      fail "$unit" "failed: result $(systemctl show -P Result "$unit"), exit status $(systemctl show -P ExecMainStatus "$unit")"
      return 1
    fi
    if [ "$state" != activating ] && [ -z "$(systemctl list-jobs --no-legend "$unit")" ]; then
      finished=${finished:-$SECONDS}
      if [ $((SECONDS - finished)) -gt 120 ]; then
        fail "$unit" "finished ($state) but no shutdown followed"
        return 1
      fi
    fi
    sleep 0.5
  done
}

# The journal of every boot, for the host (written before the verdict).
dump_journal() {
  # journald reads service output and kernel messages asynchronously: let it catch up.
  journalctl --sync
  {
    echo "==== units: liveupdate* ===="
    journalctl -b all -o short-monotonic --no-pager -u 'liveupdate*'
    echo "==== units: luo-e2e.service, e2e-* ===="
    journalctl -b all -o short-monotonic --no-pager -u luo-e2e.service -u 'e2e-*'
    echo "==== kernel: luo_rfc1, luo_e2e, kexec ===="
    journalctl -b all -o short-monotonic --no-pager -k --grep 'luo_rfc1|luo_e2e|kexec|liveupdate|reclaimed'
    echo "==== everything ===="
    journalctl -b all -o short-monotonic --no-pager
  } >>"$E2E_JOURNAL" 2>&1
}

# finish_scenario: the verdict (pass when no check failed), the journal, poweroff.
finish_scenario() {
  local failures=""
  step finish
  [ -s "$E2E_STATE/failures" ] && failures=$(cat "$E2E_STATE/failures")
  dump_journal
  if [ -z "$failures" ]; then
    emit verdict pass ""
  else
    emit verdict fail "$failures"
  fi
  sync
  systemctl --no-block poweroff
  exec sleep infinity
}

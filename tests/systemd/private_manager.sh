#!/bin/bash
# Runs a `systemd --user` manager in private mount and PID namespaces, for tests.
# Started by tests/systemd/harness.ts; not meant to be run by hand.
#
# Usage: private_manager.sh RUNTIME_DIR HOME_DIR LOG_FILE LOG_LEVEL CGROUP...
#   CGROUP is "required:DIR" or "optional:DIR", a cgroup directory the harness created
#   for this run. This shell moves itself into each before anything else starts, so
#   the manager builds its app.slice/session.slice below the run's own cgroup instead
#   of at the root of the host's hierarchies. A required one that refuses ends the run.
#
# Lifetime: `setpriv --pdeathsig KILL` makes unshare die with the test process that
# started it, and `unshare --kill-child` then kills the namespace's init, which takes
# every process of the PID namespace (manager, bus, units) with it. The tmpfs on /run
# exists only in the private mount namespace and goes away with it.
set -euo pipefail

runtime_dir=$1 home_dir=$2 log_file=$3 log_level=$4
shift 4
exec 2>>"$log_file.stderr"
for entry in "$@"; do
  kind=${entry%%:*} dir=${entry#*:}
  if ! echo $$ >"$dir/cgroup.procs" 2>/dev/null; then
    if [[ $kind == required ]]; then
      echo "private_manager: cannot move into cgroup '$dir'" >&2
      exit 1
    fi
  fi
done

# Inside: PID 1 of the new namespace is this inner shell. It mounts the private /run,
# starts the manager with a clean environment and its log going to the log file, and
# waits for it.
inner='
set -eu
mount -t tmpfs -o mode=0755,size=16m liveupdate-test-run /run
mkdir -p /run/systemd/system /run/user
# The nodes sandboxing options (ProtectHome=, InaccessiblePaths=, …) mount over paths;
# PID 1 creates them at boot.
mkdir -p -m 0755 /run/systemd/inaccessible
mkdir -m 0000 /run/systemd/inaccessible/dir
install -m 0000 /dev/null /run/systemd/inaccessible/reg
mknod -m 0000 /run/systemd/inaccessible/chr c 0 0
mknod -m 0000 /run/systemd/inaccessible/blk b 0 0
mkfifo -m 0000 /run/systemd/inaccessible/fifo
# A manager that is not PID 1 logs to /dev/console (there is no journal here). Run it on
# a pseudo-terminal that script(1) records into the log file, and bind that terminal over
# /dev/console in this mount namespace: nothing reaches the console of the host.
script --quiet --flush --command "mount --bind \"\$(tty)\" /dev/console && exec env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  HOME=$2 XDG_RUNTIME_DIR=$1 SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=$4 SYSTEMD_COLORS=0 \
  /usr/lib/systemd/systemd --user" "$3" </dev/null >>"$3.stderr" 2>&1 &
wait $!
'
exec setpriv --pdeathsig KILL -- \
  unshare --mount --pid --fork --kill-child --propagation private --mount-proc -- \
  /bin/bash -c "$inner" private-manager "$runtime_dir" "$home_dir" "$log_file" "$log_level"

#!/bin/bash
# Started by luo-mainline-e2e.service: runs the scenario driver with the deno and
# the sources of the per-run disk. Its output goes to the serial console.
# The kexec transaction stops luo-mainline-e2e.service (SIGTERM to its whole control
# group) while the driver's `systemctl start liveupdate-prepare` still waits for the
# agent: ignored here (the driver keeps a listener of its own and runs that systemctl
# with SIGTERM ignored too), or the driver dies before it can report.
trap '' TERM
export DENO_DIR=/opt/liveupdate/deno-dir NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 HOME=/root
echo "@@LUO-INIT up $(cut -d' ' -f1 /proc/uptime)"
/opt/liveupdate/deno run --allow-all --cached-only --no-check \
  /opt/liveupdate/repo/tests/mainline/debian/driver.ts
echo "@@LUO-EXIT $?"

/**
 * Issue 8, scenario 1: a live update through the agent, with test services in
 * every phase (a workload stopped at prepare and started at finish, a marker in
 * the reboot phase, a restore service in `updated` that reclaims the devices).
 * The devices are chosen by udev's marks plus `devices.match` on a kernel
 * uevent property (read from sysfs: udev's database does not hold it).
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";
import {
  agentTimings,
  attemptRecord,
  expectEqual,
  expectHistory,
  object,
  recordSeconds,
} from "./_agent_records.ts";

/** See the module documentation. */
export const agentUpdate: Scenario = {
  name: "agent_update",
  summary: "systemctl start liveupdate-prepare -> real kexec -> finish, services in every phase",
  guest: new URL("./agent_update", import.meta.url).pathname,
  boots: 2,
  verify(result) {
    if (result.boots[1]?.name !== "kexec") throw new Error("The second boot was not a kexec");
    const entry = expectHistory(result, 2, "succeeded");
    expectEqual("history --json attempts[0].exit_code", entry.exit_code, 0);
    const record = attemptRecord(result, 2);
    // The devices udev marked (nic0, nic1; DRIVER from sysfs) were planned and preserved.
    const plan = object(record.plan, "The record's plan");
    const devices = object(plan.devices, "The plan's devices");
    const selected = JSON.stringify(devices.selected);
    for (const nic of ["nic0", "nic1"]) {
      if (!selected.includes(`/${nic}`)) {
        throw new Error(`The plan does not select ${nic}: ${selected}`);
      }
    }
    if (selected.includes("disk0") || selected.includes("nic2")) {
      throw new Error(`The plan selects a device udev did not mark: ${selected}`);
    }
    const incoming = result.value(2, "incoming") ?? "";
    const handedOver = /^accepted previous=1\.0 current=1\.0 devices=(\S+)$/.exec(incoming)?.[1]
      ?.split(",") ?? [];
    if (!handedOver.includes("nic0") || !handedOver.includes("nic1")) {
      throw new Error(`The new kernel did not take nic0 and nic1 over: "${incoming}"`);
    }
    // Every step ran and is journaled done.
    const steps = (record.steps as { name: string; status: string }[]).map((step) =>
      `${step.name}:${step.status}`
    );
    for (
      const step of [
        "request-devices",
        "load-kernel",
        "phase-prepare",
        "prepare-kernel",
        "phase-reboot",
        "verify",
        "phase-updated",
        "reclaim-devices",
        "finish-kernel",
        "phase-finish",
      ]
    ) {
      if (!steps.includes(`${step}:done`)) {
        throw new Error(`The record lacks step ${step} done: ${steps.join(" ")}`);
      }
    }
    recordSeconds(record, "prepare_ms");
    recordSeconds(record, "kexec_to_finish_ms");
    // status --json reports the kernel back in normal and the attempt in its history.
    const status = object(result.json(2, "status"), "status --json");
    expectEqual("status --json kernel.state", object(status.kernel, "kernel").state, "normal");
    const attempts = object(status.attempts, "status --json attempts");
    expectEqual("status --json attempts.open", attempts.open, null);
    const recent = JSON.stringify(attempts.recent);
    if (!recent.includes(String(record.id))) {
      throw new Error(`status --json does not list the attempt ${record.id}: ${recent}`);
    }
  },
  timings: (result) => agentTimings(result, 2),
};

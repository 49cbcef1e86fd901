/**
 * Issue 8, scenario 1: a live update through the agent, with test services in
 * every phase (a workload stopped at prepare and started at finish, a marker in
 * the reboot phase, a restore service in `updated` that reclaims the devices).
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";

/** See the module documentation. */
export const agentUpdate: Scenario = {
  name: "agent_update",
  summary: "systemctl start liveupdate-prepare -> real kexec -> finish, services in every phase",
  guest: new URL("./agent_update", import.meta.url).pathname,
  boots: 2,
  pending: "needs the update flow (liveupdate-agent prepare/finish and units/liveupdate-*.service)",
  verify(result) {
    if (result.boots[1]?.name !== "kexec") throw new Error("The second boot was not a kexec");
  },
};

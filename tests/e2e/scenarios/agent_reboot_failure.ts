/**
 * Issue 8, scenario 3: the REBOOT step fails inside the kexec; the host comes
 * back through systemd's cold-reboot fallback, and the agent records the
 * failed update and restores the services.
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";

/** See the module documentation. */
export const agentRebootFailure: Scenario = {
  name: "agent_reboot_failure",
  summary: "REBOOT fails: cold reboot, the agent records the failure and restores services",
  guest: new URL("./agent_reboot_failure", import.meta.url).pathname,
  boots: 2,
  pending: "needs the update flow (prepare, and recovery at boot by liveupdate-finish.service)",
  verify(result) {
    if (result.boots[1]?.name !== "cold") throw new Error("The second boot was not a cold boot");
  },
};

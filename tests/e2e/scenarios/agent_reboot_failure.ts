/**
 * Issue 8, scenario 3: the REBOOT step fails inside the kexec; the host comes
 * back through systemd's cold-reboot fallback, and the agent (finish at boot)
 * records the failed update and restores the services.
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";
import { attemptRecord, expectEqual, expectHistory, object } from "./_agent_records.ts";

/** See the module documentation. */
export const agentRebootFailure: Scenario = {
  name: "agent_reboot_failure",
  summary: "REBOOT fails: cold reboot, the agent records the failure and restores services",
  guest: new URL("./agent_reboot_failure", import.meta.url).pathname,
  boots: 2,
  verify(result) {
    if (result.boots[1]?.name !== "cold") throw new Error("The second boot was not a cold boot");
    if (!result.console.includes("luo_rfc1: REBOOT failed (fail_reboot=5)")) {
      throw new Error("The console does not show the REBOOT step failing");
    }
    const entry = expectHistory(result, 2, "failed");
    expectEqual("history --json attempts[0].exit_code", entry.exit_code, 1);
    const record = attemptRecord(result, 2);
    const notes = object(record.notes, "The record's notes");
    const rollback = object(notes.rollback, "The record's notes.rollback");
    if (rollback.incomplete) {
      throw new Error(`The rollback is incomplete: ${JSON.stringify(rollback)}`);
    }
    const undone = JSON.stringify(rollback.undone);
    for (const step of ["phase-prepare", "load-kernel", "request-devices"]) {
      if (!undone.includes(step)) throw new Error(`The rollback did not undo ${step}: ${undone}`);
    }
  },
};

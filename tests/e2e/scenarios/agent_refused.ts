/**
 * Issue 8, scenario 2: an incompatible target (its liveupdate-abi metadata says
 * LUO 2.0; the running kernel is 1.0) is refused before anything changed:
 * nothing stopped, nothing requested, nothing loaded.
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";
import { attemptRecord, expectEqual, expectHistory, object } from "./_agent_records.ts";

/** See the module documentation. */
export const agentRefused: Scenario = {
  name: "agent_refused",
  summary: "incompatible target refused by preflight; nothing stopped, requested or loaded",
  guest: new URL("./agent_refused", import.meta.url).pathname,
  boots: 1,
  verify(result) {
    const entry = expectHistory(result, 1, "refused");
    expectEqual("history --json attempts[0].exit_code", entry.exit_code, 5);
    const record = attemptRecord(result, 1);
    const compat = object(record.compat, "The record's compat");
    expectEqual("the record's compat.verdict", compat.verdict, "incompatible");
    if (Array.isArray(record.steps) && record.steps.length > 0) {
      throw new Error(`A refused attempt ran steps: ${JSON.stringify(record.steps)}`);
    }
  },
};

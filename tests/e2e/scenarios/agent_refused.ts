/**
 * Issue 8, scenario 2: an incompatible target (LUO 2.0 from 1.0) is refused
 * before anything changed: nothing stopped, nothing requested, nothing loaded.
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";

/** See the module documentation. */
export const agentRefused: Scenario = {
  name: "agent_refused",
  summary: "incompatible target refused by preflight; nothing stopped, requested or loaded",
  guest: new URL("./agent_refused", import.meta.url).pathname,
  boots: 1,
  pending:
    "needs the update flow (liveupdate-agent prepare's preflight and liveupdate-prepare.service)",
};

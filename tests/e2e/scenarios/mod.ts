/**
 * Every VM scenario, in the order the tier runs them. Add a scenario: a folder
 * of guest files (see ../scenario.ts), a file describing it, one line here.
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";
import { agentRebootFailure } from "./agent_reboot_failure.ts";
import { agentRefused } from "./agent_refused.ts";
import { agentUpdate } from "./agent_update.ts";
import { coldReboot } from "./cold_reboot.ts";
import { smoke } from "./smoke.ts";
import { versionMismatch } from "./version_mismatch.ts";

/** The scenarios, by run order. */
export const SCENARIOS: readonly Scenario[] = [
  smoke,
  coldReboot,
  versionMismatch,
  agentUpdate,
  agentRefused,
  agentRebootFailure,
];

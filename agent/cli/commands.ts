/**
 * The list of commands, in the order help shows them.
 *
 * @module
 */

import type { Command } from "./command.ts";
import { configCommand } from "./config_command.ts";
import { sessionsCommand } from "./sessions_command.ts";
import { statusCommand } from "./status_command.ts";

/** Every command of `liveupdate-agent`. */
export const COMMANDS: readonly Command[] = [statusCommand, sessionsCommand, configCommand];

/**
 * The list of commands, in the order help shows them.
 *
 * @module
 */

import type { Command } from "./command.ts";
import { configCommand } from "./config_command.ts";
import { demoCommand } from "./demo_command.ts";
import { devicesCommand } from "./devices_command.ts";
import { fleetCommand } from "./fleet_command.ts";
import { historyCommand } from "./history_command.ts";
import { schemaCommand } from "./schema_command.ts";
import { sessionsCommand } from "./sessions_command.ts";
import { statusCommand } from "./status_command.ts";
import {
  cancelCommand,
  checkCommand,
  finishCommand,
  prepareCommand,
  recoverCommand,
} from "./update_commands.ts";
import { waitCommand } from "./wait_command.ts";
import { watchCommand } from "./watch_command.ts";

/** Every command of `liveupdate-agent`. */
export const COMMANDS: readonly Command[] = [
  statusCommand,
  historyCommand,
  checkCommand,
  prepareCommand,
  finishCommand,
  cancelCommand,
  recoverCommand,
  waitCommand,
  watchCommand,
  devicesCommand,
  configCommand,
  schemaCommand,
  fleetCommand,
  sessionsCommand,
  demoCommand,
];

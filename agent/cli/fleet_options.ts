/**
 * The fleet options of the commands that start an update (`prepare`): `--now`
 * starts without waiting for the maintenance window, and the override is
 * recorded with its reason. It never skips the fleet slot.
 *
 * @module
 */

import type { AcquireOptions } from "../fleet/mod.ts";
import type { CommandArgs, OptionSpec } from "./command.ts";

/** Options to spread into a command's options. */
export const FLEET_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  now: {
    type: "boolean",
    description: "Start without waiting for the maintenance window (recorded; the fleet slot " +
      "is still required).",
  },
  "now-reason": {
    type: "string",
    value: "TEXT",
    description: "Why --now was given; recorded in the attempt and the journal.",
  },
};

/** The window override the command line asks for, as `FleetCoordinator.acquire` takes it. */
export function fleetOverride(args: CommandArgs): AcquireOptions["override"] {
  if (args.values.now !== true) return undefined;
  const reason = args.values["now-reason"];
  return {
    reason: typeof reason === "string" && reason.trim() !== ""
      ? `--now: ${reason.trim()}`
      : "--now given on the command line",
  };
}

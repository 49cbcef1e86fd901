/**
 * Options every command accepts.
 *
 * @module
 */

import type { OptionSpec } from "./command.ts";

/** Options accepted before or after any command. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  help: { type: "boolean", short: "h", description: "Show help (for a command: its help)." },
  version: { type: "boolean", description: "Print the agent's version." },
  "config-root": {
    type: "string",
    value: "DIR",
    description: "Look up the config drop-in directories under DIR instead of /.",
  },
  "log-level": {
    type: "string",
    value: "LEVEL",
    description: "Lowest priority to log: debug, info, notice, warning, error.",
  },
  "log-format": {
    type: "string",
    value: "FORMAT",
    description: "auto, text, journal (<N> prefixes) or json.",
  },
};

/**
 * What a subcommand of `liveupdate-agent` is made of.
 *
 * @module
 */

import type { LoadedConfig } from "../config/mod.ts";
import type { ExitCode } from "../exit_codes.ts";
import type { Host } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Platform } from "./platform.ts";

/** One command-line option of a command. */
export interface OptionSpec {
  type: "boolean" | "string";
  short?: string;
  /** Shown in help as `--name=VALUE`. */
  value?: string;
  description: string;
  multiple?: boolean;
}

/** What a command receives when it runs. */
export interface CommandContext {
  host: Host;
  log: Logger;
  loaded: LoadedConfig;
  /** The directory the configuration was looked up under ("/" in production). */
  configRoot: string;
  /** libc and the kernel's files through it, wired in by `agent/main.ts`. */
  platform: Platform;
  /**
   * Runs another command line of this agent in this process, on `host` (the
   * rehearsal runs `check`, `prepare`, `finish` this way). Set by `runCli`.
   */
  cli?: (argv: readonly string[], host: Host) => Promise<number>;
}

/** Parsed options and positional arguments of one invocation. */
export interface CommandArgs {
  values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  positionals: readonly string[];
}

/** A subcommand. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** A paragraph or two for `COMMAND --help`. */
  description: string;
  options: Readonly<Record<string, OptionSpec>>;
  /** Names of positional arguments, shown in the usage line; none if absent. */
  positionals?: readonly string[];
  run(context: CommandContext, args: CommandArgs): Promise<ExitCode>;
}

/**
 * Running one invocation of `liveupdate-agent`: parse, load the configuration,
 * dispatch, and turn every error into one clear line and its exit code.
 *
 * @module
 */

import { ConfigError, loadConfig, type LoadedConfig } from "../config/mod.ts";
import { AgentError, UsageError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { Host } from "../host/mod.ts";
import {
  createLogger,
  type Level,
  type LogFormat,
  type Logger,
  resolveFormat,
  streamSink,
  wantsColor,
} from "../log/mod.ts";
import { VERSION } from "../version.ts";
import type { Command } from "./command.ts";
import { changesHost, checkControl, processIdentity } from "./control.ts";
import { COMMANDS } from "./commands.ts";
import { commandHelp, mainHelp } from "./help.ts";
import { parseCommandLine } from "./parse.ts";
import { NO_PLATFORM, type Platform } from "./platform.ts";

/** Options of {@link runCli}. */
export interface RunOptions {
  /** The commands (all of them by default). */
  commands?: readonly Command[];
  /** libc and the kernel's files through it; `agent/main.ts` passes the real ones. */
  platform?: Platform;
}

/** The most configuration problems logged one by one. */
const MAX_PROBLEMS = 50;

function makeLogger(host: Host, level: Level, format: LogFormat | "auto"): Logger {
  const resolved = resolveFormat(format, host.env, host.stderr);
  const color = resolved === "text" && wantsColor(host.env, host.stderr);
  return createLogger({ sink: streamSink(host.stderr, resolved, color), clock: host.clock, level });
}

function reportUnexpected(log: Logger, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  log.error(`Unexpected internal error: ${message}. Please report this as a bug.`);
  if (error instanceof Error && error.stack) log.debug(error.stack);
}

/**
 * Runs the command line `argv` (without the program name) against `host` and
 * returns the exit code. Never throws.
 */
export async function runCli(
  argv: readonly string[],
  host: Host,
  options: RunOptions = {},
): Promise<number> {
  const commands = options.commands ?? COMMANDS;
  const platform = options.platform ?? NO_PLATFORM;
  let log = makeLogger(host, "info", "auto");
  let parsed;
  try {
    parsed = parseCommandLine(argv, commands);
  } catch (error) {
    if (error instanceof UsageError) {
      log.error(error.message);
      return error.exitCode;
    }
    reportUnexpected(log, error);
    return ExitCode.Failed;
  }
  const { global, command, args } = parsed;
  if (global.version) {
    host.stdout.write(`liveupdate-agent ${VERSION}\n`);
    return ExitCode.Success;
  }
  if (!command) {
    if (global.help) {
      host.stdout.write(mainHelp(commands));
      return ExitCode.Success;
    }
    host.stderr.write(mainHelp(commands));
    return ExitCode.Usage;
  }
  if (global.help) {
    host.stdout.write(commandHelp(command));
    return ExitCode.Success;
  }
  log = makeLogger(host, global.logLevel ?? "info", global.logFormat ?? "auto");
  const configRoot = global.configRoot ?? "/";
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfig(host.fs, { root: configRoot });
  } catch (error) {
    if (error instanceof ConfigError) {
      // Every problem up to a bound: a hostile file must not flood the journal.
      for (const problem of error.problems.slice(0, MAX_PROBLEMS)) log.error(problem.message);
      if (error.problems.length > MAX_PROBLEMS) {
        log.error(
          `… and ${error.problems.length - MAX_PROBLEMS} more configuration problems ` +
            "('liveupdate-agent config' after fixing these shows the rest).",
        );
      }
      return error.exitCode;
    }
    reportUnexpected(log, error);
    return ExitCode.Failed;
  }
  log = makeLogger(
    host,
    global.logLevel ?? loaded.config.log.level,
    global.logFormat ?? loaded.config.log.format,
  );
  try {
    // Only root or control.group may change anything; nothing is touched before this.
    if (changesHost(command.name, args.positionals)) {
      const what = command.name === "fleet" ? "fleet release" : command.name;
      checkControl(
        platform.identity ?? processIdentity(platform.libc),
        loaded.config.control.group,
        what,
      );
    }
    return await command.run({ host, log, loaded, configRoot, platform }, args);
  } catch (error) {
    if (error instanceof AgentError) {
      log.error(error.message);
      if (error.cause !== undefined) log.debug(`Caused by: ${String(error.cause)}`);
      return error.exitCode;
    }
    reportUnexpected(log, error);
    return ExitCode.Failed;
  }
}

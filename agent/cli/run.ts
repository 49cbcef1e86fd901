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
  journalSink,
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
  /**
   * journald's native socket (default /run/systemd/journal/socket); tests bind
   * their own. Records go there only under systemd (see `makeLogger`).
   */
  journalSocket?: string;
}

/** The most configuration problems logged one by one. */
const MAX_PROBLEMS = 50;

/**
 * The logger of a run. Under systemd ("auto" and JOURNAL_STREAM set) records go to
 * the journal natively (MESSAGE_ID, LIVEUPDATE_* fields), falling back to
 * `<N>`-prefixed standard error when the journal's socket cannot be used.
 */
function makeLogger(
  host: Host,
  level: Level,
  format: LogFormat | "auto",
  options: RunOptions,
): Logger {
  const resolved = resolveFormat(format, host.env, host.stderr);
  const color = resolved === "text" && wantsColor(host.env, host.stderr);
  const stream = streamSink(host.stderr, resolved, color);
  const sink = format === "auto" && resolved === "journal" && options.platform
    ? journalSink(options.platform.libc, stream, options.journalSocket)
    : stream;
  return createLogger({ sink, clock: host.clock, level });
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
  let log = makeLogger(host, "info", "auto", options);
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
  log = makeLogger(host, global.logLevel ?? "info", global.logFormat ?? "auto", options);
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
    options,
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
    const cli = (inner: readonly string[], innerHost: Host) => runCli(inner, innerHost, options);
    return await command.run({ host, log, loaded, configRoot, platform, cli }, args);
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

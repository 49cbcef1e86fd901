/**
 * The base error class of the agent.
 *
 * Every layer defines its own typed errors (kernel, systemd, config, …) as
 * subclasses of {@link AgentError}, so the command line can turn any of them into
 * one clear line and the documented exit code, never a stack trace.
 *
 * @module
 */

import { ExitCode } from "./exit_codes.ts";

/** Options accepted by {@link AgentError} and its subclasses. */
export interface AgentErrorOptions {
  /** The underlying error, kept for `--log-level=debug` output. */
  cause?: unknown;
  /** The exit code the command line uses when this error ends a command. */
  exitCode?: ExitCode;
}

/** An error meant for an operator: its message says what happened and what to do. */
export class AgentError extends Error {
  override name = "AgentError";
  /** The exit code the command line uses when this error ends a command. */
  readonly exitCode: ExitCode;

  constructor(message: string, options: AgentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options.exitCode ?? ExitCode.Failed;
  }
}

/** A wrong command line: unknown command or option, or a bad option value. */
export class UsageError extends AgentError {
  override name = "UsageError";

  constructor(message: string, options: Omit<AgentErrorOptions, "exitCode"> = {}) {
    super(message, { ...options, exitCode: ExitCode.Usage });
  }
}

/** Describes any thrown value in one line, for logs and error messages. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

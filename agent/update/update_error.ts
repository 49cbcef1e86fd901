/**
 * How an update ends when it does not succeed: refused before anything changed,
 * rolled back, or failed with something left to fix.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";

/** One reason preflight refuses an update. */
export interface PreflightProblem {
  /** Which check ("kernel", "target", "cmdline", "compat", "devices", "units", …). */
  check: string;
  /** A sentence naming the thing and what to do. */
  message: string;
}

/** Preflight refused the update; nothing on the host was changed. */
export class RefusedError extends AgentError {
  override name = "RefusedError";
  readonly problems: readonly PreflightProblem[];

  constructor(problems: readonly PreflightProblem[]) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
    super(
      `Preflight refused the live update: ${problems[0]?.message ?? "no reason given"}${more}`,
      { exitCode: ExitCode.Refused },
    );
    this.problems = problems;
  }
}

/** The update failed and everything it had changed was rolled back. */
export class RolledBackError extends AgentError {
  override name = "RolledBackError";

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.RolledBack });
  }
}

/** The update failed, and something could not be put back (or could not be finished). */
export class UpdateFailedError extends AgentError {
  override name = "UpdateFailedError";

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.Failed });
  }
}

/** The agent received SIGTERM (or was cancelled) while an update was being prepared. */
export class UpdateAbortedError extends AgentError {
  override name = "UpdateAbortedError";

  constructor() {
    super("The update was stopped (SIGTERM or cancel) before the kexec.");
  }
}

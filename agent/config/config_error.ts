/**
 * Errors in configuration files.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";

/** One problem in one configuration file, already phrased for an operator. */
export interface ConfigProblem {
  /** The file, or "(defaults)" for a problem of the merged result. */
  file: string;
  /** The dotted key ("phases.prepare.timeout"), when the problem has one. */
  key?: string;
  /** A full sentence naming the file, the key, the bad value and what to do. */
  message: string;
}

/** The configuration could not be read or is invalid. Carries every problem found. */
export class ConfigError extends AgentError {
  override name = "ConfigError";
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], options: { cause?: unknown } = {}) {
    const first = problems[0]?.message ?? "The configuration is invalid.";
    const more = problems.length > 1
      ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? "s" : ""})`
      : "";
    super(first + more, { ...options, exitCode: ExitCode.Config });
    this.problems = problems;
  }
}

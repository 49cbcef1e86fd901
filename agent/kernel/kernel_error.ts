/**
 * Errors from the kernel's live-update interface.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";

/** What the agent was doing when the kernel answered with an error. */
export type KernelOperation =
  | "read"
  | "prepare"
  | "cancel"
  | "finish"
  | "request"
  | "unrequest"
  | "open"
  | "ioctl"
  | "poll";

/** Options of {@link KernelError}. */
export interface KernelErrorOptions {
  /** The errno name ("EINVAL", "EBUSY", …), or undefined for contents the agent cannot use. */
  errno?: string;
  /** The file (or device node) involved. */
  file: string;
  operation: KernelOperation;
  cause?: unknown;
  exitCode?: ExitCode;
}

/**
 * The kernel refused an operation, or a kernel file held something the agent
 * cannot use. Carries the errno name, the file and the operation; the message says
 * what it means here and what to do.
 */
export class KernelError extends AgentError {
  override name = "KernelError";
  readonly errno: string | undefined;
  readonly file: string;
  readonly operation: KernelOperation;

  constructor(message: string, options: KernelErrorOptions) {
    super(message, { cause: options.cause, exitCode: options.exitCode ?? ExitCode.Failed });
    this.errno = options.errno;
    this.file = options.file;
    this.operation = options.operation;
  }
}

/** The running kernel does not offer live update, or not the interface needed. */
export class KernelUnsupportedError extends AgentError {
  override name = "KernelUnsupportedError";
  /** What is missing, for `status` (for example the absent paths). */
  readonly missing: readonly string[];

  constructor(message: string, missing: readonly string[], options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.Unsupported });
    this.missing = missing;
  }
}

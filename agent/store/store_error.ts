/**
 * Errors reading or writing the agent's records.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import type { ExitCode } from "../exit_codes.ts";

/** A record could not be written or read back; the message names the file and what to do. */
export class StoreError extends AgentError {
  override name = "StoreError";
  /** The file (or directory) involved. */
  readonly path: string;

  constructor(
    message: string,
    path: string,
    options: { cause?: unknown; exitCode?: ExitCode } = {},
  ) {
    super(message, options);
    this.path = path;
  }
}

/** A one-line reason for a failed file operation, naming disk-full and permission cases. */
export function fileErrorReason(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === "ENOSPC") return "the disk is full (ENOSPC)";
  if (code === "EDQUOT") return "the disk quota is exceeded (EDQUOT)";
  if (code === "EROFS") return "the file system is read-only (EROFS)";
  if (code === "EIO") return "an I/O error occurred (EIO)";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) return "the agent lacks the Deno permission";
  if (error instanceof Deno.errors.NotFound) return "it does not exist";
  return error instanceof Error ? error.message : String(error);
}

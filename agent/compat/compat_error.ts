/**
 * Errors of the compatibility check.
 *
 * @module
 */

import { AgentError } from "../errors.ts";

/** A kernel's LUO ABI metadata (or a version setting) is malformed. */
export class CompatError extends AgentError {
  override name = "CompatError";
  /** The metadata file or configuration key at fault. */
  readonly source: string;

  constructor(message: string, source: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.source = source;
  }
}

/**
 * The agent's version, shown by `--version` and recorded in every attempt.
 *
 * @module
 */

/** The agent's version (semantic versioning). Kept equal to deno.json's version by a test. */
export const VERSION = "0.1.0";

/**
 * The agent's durable records: atomic writes and the history of attempts.
 *
 * @module
 */

export * from "./atomic.ts";
export * from "./attempt.ts";
export * from "./attempts.ts";
export * from "./private_dir.ts";
export * from "./store_error.ts";

/**
 * Logging for a systemd service.
 *
 * @module
 */

export * from "./events.ts";
export * from "./format.ts";
export * from "./journal_native.ts";
export * from "./level.ts";
export * from "./logger.ts";

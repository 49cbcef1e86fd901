/**
 * Logging for a systemd service.
 *
 * @module
 */

export * from "./format.ts";
export * from "./level.ts";
export * from "./logger.ts";

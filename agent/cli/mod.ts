/**
 * The command line of `liveupdate-agent`.
 *
 * @module
 */

export * from "./command.ts";
export * from "./commands.ts";
export * from "./run.ts";
export * from "./platform.ts";

/**
 * Configuration: TOML drop-ins, validated against one schema.
 *
 * @module
 */

export * from "./config_error.ts";
export * from "./duration.ts";
export * from "./fields.ts";
export * from "./load.ts";
export * from "./render.ts";
export * from "./schema.ts";

/**
 * Host access behind small interfaces.
 *
 * @module
 */

export * from "./host.ts";
export * from "./real_host.ts";
export * from "./errno.ts";
export * from "./libc.ts";
export * from "./test_host.ts";

/**
 * Host access behind small interfaces.
 *
 * @module
 */

export * from "./host.ts";
export * from "./real_host.ts";
export * from "./errno.ts";
export * from "./file_identity.ts";
export * from "./libc.ts";
export * from "./kernel_fs.ts";
export * from "./beneath.ts";
export * from "./libc_kernel_fs.ts";
export * from "./proc_facts.ts";
export * from "./test_host.ts";

/**
 * Kernel handover compatibility: the LUO ABI versions (RFC v1) or compatible
 * strings (mainline) of the running and the target kernel, and the verdict by
 * the kernel's own rule.
 *
 * @module
 */

export * from "./check.ts";
export * from "./compat_error.ts";
export * from "./compatible.ts";
export * from "./metadata.ts";
export * from "./release.ts";
export * from "./verdict.ts";
export * from "./version.ts";

/**
 * The target kernel: command-line checks and loading with kexec-tools.
 *
 * @module
 */

export * from "./cmdline.ts";
export * from "./kexec_tools.ts";

/**
 * The mainline `/dev/liveupdate` backend (Linux 6.19+): ABI, device, sessions,
 * errors, KHO reader, preflight and detection (compatibility: agent/compat/).
 *
 * @module
 */

export * from "./abi.ts";
export * from "./backend.ts";
export * from "./device.ts";
export * from "./errors.ts";
export * from "./kho.ts";
export * from "./preflight.ts";
export * from "./session.ts";

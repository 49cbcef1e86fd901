/**
 * The mainline `/dev/liveupdate` backend (Linux 6.19+): ABI, device, sessions,
 * errors, KHO reader, compatibility, preflight and detection.
 *
 * @module
 */

export * from "./abi.ts";
export * from "./backend.ts";
export * from "./compat.ts";
export * from "./device.ts";
export * from "./errors.ts";
export * from "./kho.ts";
export * from "./preflight.ts";
export * from "./session.ts";

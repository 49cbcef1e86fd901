/**
 * Device selection: which devices stay alive across a live update, chosen by udev
 * rules (a tag in the udev database) and applied to the kernel's per-device
 * `requested` flags.
 *
 * @module
 */

export * from "./apply.ts";
export * from "./devices_error.ts";
export * from "./explain.ts";
export * from "../host/mod.ts";
export * from "./ownership.ts";
export * from "./reconcile.ts";
export * from "./report.ts";
export * from "./scan.ts";
export * from "./selection.ts";
export * from "./selection_cache.ts";
export * from "./sysfs_path.ts";
export * from "./sysfs_resolver.ts";
export * from "./udev_data.ts";
export * from "./udev_id.ts";

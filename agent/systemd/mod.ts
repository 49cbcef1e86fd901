/**
 * The systemd layer: a D-Bus client of systemd's manager (unit states, jobs followed
 * to their result, the kexec), update phases as stop/start waves with undo, and
 * sd_notify for the watcher.
 *
 * @module
 */

export * from "./bus.ts";
export * from "./connect.ts";
export * from "./kexec.ts";
export * from "./manager.ts";
export * from "./notify.ts";
export * from "./phase.ts";
export * from "./systemd_error.ts";

/**
 * The live update itself: prepare → kexec → finish, cancel, recover, as journaled
 * steps with undo.
 *
 * @module
 */

export * from "./cancel.ts";
export * from "./context.ts";
export * from "./finish.ts";
export * from "./fleet_slot.ts";
export * from "./fleet_steps.ts";
export * from "./lock.ts";
export * from "./mainline_steps.ts";
export * from "./plan.ts";
export * from "./preflight.ts";
export * from "./prepare.ts";
export * from "./prepare_steps.ts";
export * from "./record.ts";
export * from "./resolve.ts";
export * from "./rollback.ts";
export * from "./steps.ts";
export * from "./update_error.ts";

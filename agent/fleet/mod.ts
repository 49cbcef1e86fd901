/**
 * The fleet layer: a slot in a fleet-wide semaphore (etcd v3 or a FleetLock
 * server) before an update changes anything, released after a healthy finish,
 * kept on failure so the rollout halts; maintenance windows; the state `status`
 * and metrics read. See coordinator.ts for the API the update flow calls.
 *
 * @module
 */

export * from "./backend.ts";
export * from "./coordinator.ts";
export * from "./decision.ts";
export * from "./etcd_backend.ts";
export * from "./etcd_client.ts";
export * from "./fleet_error.ts";
export * from "./fleetlock_backend.ts";
export * from "./from_config.ts";
export * from "./health.ts";
export * from "./host_id.ts";
export * from "./metrics.ts";
export * from "./retry.ts";
export * from "./state_file.ts";
export * from "./window.ts";
export * from "./zone.ts";
export * from "./slot.ts";

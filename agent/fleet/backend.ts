/**
 * What a fleet backend (etcd, FleetLock) offers the coordinator: try once to take
 * a slot, find a slot taken earlier, list holders, let an operator free a slot.
 * Waiting, retries, windows and decisions are the coordinator's.
 *
 * @module
 */

import type { DecisionValue } from "./decision.ts";

/** Who asks for a slot, as operators see it in `fleet status`. */
export interface HolderInfo {
  hostname: string;
  /** The agent's version. */
  agent: string;
  /** The update attempt's id, when the flow gives one. */
  attempt?: string;
}

/** A request for a slot. */
export interface SlotRequest {
  id: string;
  group: string;
  /** The group's slot count (etcd; a FleetLock server decides its own). */
  slots: number;
  info: HolderInfo;
}

/** Where a slot is held, as the attempt record keeps it (JSON). */
export interface SlotRecord {
  backend: "etcd" | "fleetlock";
  id: string;
  group: string;
  /** When the slot was taken (ISO 8601). */
  acquired_at: string;
  /** etcd: the holder key and the revision that created it. */
  key?: string;
  create_revision?: number;
  /** FleetLock: the server's base URL. */
  url?: string;
}

/** Why a slot was not granted. */
export type RefusalReason =
  /** Every slot of the group is held. */
  | "full"
  /** A failed update elsewhere halts the rollout. */
  | "halted"
  /** Another host took the last slot between our read and our write. */
  | "raced"
  /** This host holds a slot from an earlier run that is still bound to a live lease. */
  | "own-lease"
  /** This host keeps a slot from a failed or unfinished update. */
  | "kept";

/** The answer to one try. */
export type TryAcquireResult =
  | { granted: true; hold: BackendHold; fields: Record<string, DecisionValue> }
  | {
    granted: false;
    reason: RefusalReason;
    message: string;
    /** Hosts holding the group's slots or halting the rollout, when known. */
    holders: string[];
    fields: Record<string, DecisionValue>;
  };

/** A change to a held slot: it becomes permanent (no longer bound to a lease). */
export interface PersistChange {
  /** The update's stage, for operators ("kernel-prepare"); unset keeps the last one. */
  stage?: string;
  /** True when the update failed: the slot is kept and halts the rollout. */
  failed: boolean;
  reason?: string;
}

/** A slot held through a backend. */
export interface BackendHold {
  /** True while the slot is bound to a lease (etcd, before it is made permanent). */
  readonly leaseBound: boolean;
  /** Aborted, with a FleetSlotLostError as reason, when a lease-bound slot is lost. */
  readonly lost: AbortSignal;
  /** Where the slot is held. */
  readonly record: SlotRecord;
  /**
   * Makes the slot permanent (it survives the agent, the host and the kexec) and
   * records the stage. Throws FleetSlotLostError when the slot is no longer ours.
   */
  persist(change: PersistChange, signal?: AbortSignal): Promise<Record<string, DecisionValue>>;
  /** Frees the slot; "gone" when it was not held any more (an operator freed it). */
  release(
    signal?: AbortSignal,
  ): Promise<{ outcome: "released" | "gone"; fields: Record<string, DecisionValue> }>;
  /** Stops background work (the lease keeper) without freeing the slot. */
  close(): Promise<void>;
}

/** One holder of a slot, as `fleet status` lists it. */
export interface HolderListing {
  id: string;
  group: string;
  hostname?: string;
  /** "updating", or "failed" when the slot is kept after a failure. */
  state: string;
  stage?: string;
  reason?: string;
  acquired_at?: string;
  updated_at?: string;
  /** Bound to a live lease (frees itself if the host dies) or permanent. */
  lease_bound: boolean;
  /** The slot count the holder's agent was configured with. */
  slots?: number;
}

/** A mark that halts the rollout until an operator frees it. */
export interface HaltListing {
  id: string;
  group: string;
  hostname?: string;
  reason?: string;
  at?: string;
}

/** The state of the fleet's slots, when the backend can list it. */
export interface FleetListing {
  holders: HolderListing[];
  halts: HaltListing[];
  /** The etcd revision the listing was read at. */
  revision?: number;
}

/** What an operator's release freed. */
export interface OperatorReleaseResult {
  released: HolderListing[];
  halts: HaltListing[];
}

/** A fleet backend. */
export interface FleetBackend {
  readonly name: "etcd" | "fleetlock";
  /** Where it is, for messages ("etcd http://10.0.0.1:2379 prefix /liveupdate/fleet/"). */
  readonly description: string;
  /** Tries once to take a slot. */
  tryAcquire(request: SlotRequest, signal?: AbortSignal): Promise<TryAcquireResult>;
  /**
   * Finds the slot this host took earlier (in the old kernel, or before a crash);
   * undefined when it holds none. FleetLock cannot tell and returns a hold whose
   * release is the protocol's idempotent unlock.
   */
  resume(request: SlotRequest, signal?: AbortSignal): Promise<BackendHold | undefined>;
  /** Marks the rollout halted by host `id` without a slot (a failure after the slot was lost). */
  halt(request: SlotRequest, reason: string, signal?: AbortSignal): Promise<boolean>;
  /** The fleet's holders and halts; undefined when the protocol cannot list them. */
  list(signal?: AbortSignal): Promise<FleetListing | undefined>;
  /**
   * Frees the slot and halt marks of host `who` (an id or, with etcd, a hostname).
   * `force` also frees a slot bound to a live lease (a host updating right now).
   */
  operatorRelease(
    who: string,
    group: string,
    options: { force: boolean },
    signal?: AbortSignal,
  ): Promise<OperatorReleaseResult>;
  /** Closes connections. */
  close(): void;
}

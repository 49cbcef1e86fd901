/**
 * The fleet slot of one attempt, as the update flow holds it (the fleet layer's
 * API is in agent/fleet/coordinator.ts): taken before prepare changes anything,
 * made permanent before `1 > prepare`, released after a healthy finish, kept
 * after a failure, abandoned when preflight refuses after the wait.
 *
 * Everything lands in the attempt record: `notes.fleet` holds the backend, the
 * slot's record (the finish process in the new kernel resumes it from there),
 * where the slot stands and every fleet decision; `timings` gets `slot_acquired`,
 * `slot_persisted`, `healthy`, `slot_released`, `slot_kept`. The journal gets the
 * events fleet-slot-acquired, fleet-slot-kept and fleet-slot-released.
 *
 * How a slot ends is decided when the record is closed ({@link settleSlotOnClose},
 * called by closeRecord), from the attempt's result: refused → abandoned (nothing
 * changed), rolled back or failed → kept (the rollout halts), cancelled by the
 * operator → released once the host is healthy; a successful finish releases it
 * through the health gate first ({@link settleSlotAfterFinish}). A slot left
 * bound to the lease of an agent that died before the point of no return is
 * freed when `recover` rolled the host back completely, as its lease would
 * have freed it.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import {
  configuredHealthGate,
  type FleetCoordinator,
  type FleetDecision,
  type FleetRuntimeState,
  type FleetSlot,
  type HealthGate,
  readFleetState,
  type ReclaimReader,
  type SlotRecord,
  type UnitStateReader,
} from "../fleet/mod.ts";
import type { Kernel } from "../kernel/mod.ts";
import type { AttemptRecord, AttemptStatus } from "../store/mod.ts";
import type { SystemdManager } from "../systemd/mod.ts";
import type { UpdateContext } from "./context.ts";
import type { Plan } from "./plan.ts";

/** Where an attempt's slot stands, as `notes.fleet.state` says. */
export type SlotNoteState =
  /** No slot was taken (the wait ended without one). */
  | "none"
  /** Held, bound to a lease: frees itself if the agent dies. */
  | "held"
  /** Made permanent before `1 > prepare`: only a healthy finish or an operator frees it. */
  | "persistent"
  | "kept"
  | "released"
  | "abandoned"
  /** Lost while lease-bound (expired, or freed by an operator). */
  | "lost"
  /** The finish process found no slot any more (an operator freed it). */
  | "missing";

/** `notes.fleet` of an attempt record. */
export interface FleetNotes {
  backend: string;
  group: string;
  host_id: string;
  slots: number;
  /** Where the slot is held; the finish process resumes it from here. */
  slot: SlotRecord | null;
  state: SlotNoteState;
  /** The recorded `--now` override of the maintenance window. */
  override?: string;
  /** Why the fleet backend could not be asked to settle the slot (it stays as it was). */
  error?: string;
  /** Every fleet decision of the attempt, oldest first. */
  decisions: FleetDecision[];
}

const UNSETTLED: ReadonlySet<SlotNoteState> = new Set(["held", "persistent"]);

/** Attempts whose slot this process holds, by attempt id. */
const live = new Map<string, FleetAttempt>();
/** Attempts whose slot this process could not find (the backend did not answer in time). */
const unreachable = new Set<string>();

function noteState(slot: FleetSlot | undefined): SlotNoteState {
  if (!slot) return "none";
  return slot.state;
}

/** The fleet notes of `record`, if the attempt took part in a fleet. */
export function fleetNotes(record: AttemptRecord): FleetNotes | undefined {
  const notes = record.notes.fleet;
  return typeof notes === "object" && notes !== null && !Array.isArray(notes)
    ? notes as FleetNotes
    : undefined;
}

/**
 * One attempt's slot: waits for it (prepare) or finds it again (finish, recover,
 * cancel), and writes every decision into the record it is bound to.
 */
export class FleetAttempt implements AsyncDisposable {
  readonly #context: UpdateContext;
  readonly #fleet: FleetCoordinator;
  /** Decisions of earlier processes (from the record), before this one's. */
  #earlier: FleetDecision[] = [];
  #mine: readonly FleetDecision[] = [];
  #slot: FleetSlot | undefined;
  #record: AttemptRecord | undefined;
  #override: string | undefined;
  #resumed = false;
  #closed = false;

  constructor(context: UpdateContext, fleet: FleetCoordinator) {
    this.#context = context;
    this.#fleet = fleet;
  }

  /** The slot, once taken or found. */
  get slot(): FleetSlot | undefined {
    return this.#slot;
  }

  /** Aborted when the slot is lost while lease-bound (the update must roll back). */
  get lost(): AbortSignal | undefined {
    return this.#slot?.signal;
  }

  /** Whether the slot was found again (recover, finish) rather than taken by this process. */
  get resumed(): boolean {
    return this.#resumed;
  }

  /** The decisions so far (earlier processes' first). */
  get decisions(): FleetDecision[] {
    return [...this.#earlier, ...this.#mine];
  }

  /**
   * Waits for the maintenance window (unless `override`) and a slot. Throws what
   * `FleetCoordinator.acquire` throws; nothing on the host changes.
   */
  async acquire(options: {
    override?: { reason: string };
    signal?: AbortSignal;
    /** Called after each decision of the wait (the metrics follow it). */
    onDecision?: () => void;
  }): Promise<void> {
    if (options.override) this.#override = options.override.reason;
    this.#slot = await this.#fleet.acquire({
      ...(options.override ? { override: options.override } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onDecision: (decision, all) => {
        this.#decided(decision, all);
        options.onDecision?.();
      },
    });
    this.#update();
  }

  /** Finds the slot `record` took (undefined state "missing" when it is gone). */
  async resume(record: AttemptRecord, signal?: AbortSignal): Promise<void> {
    const notes = fleetNotes(record);
    this.#earlier = [...notes?.decisions ?? []];
    this.#override = notes?.override;
    this.#resumed = true;
    this.#record = record;
    this.#slot = await this.#fleet.resume({
      ...(notes?.slot ? { record: notes.slot } : {}),
      attempt: record.id,
      ...(signal ? { signal } : {}),
      onDecision: (decision, all) => this.#decided(decision, all),
    });
    live.set(record.id, this);
    this.#update(this.#slot ? undefined : "missing");
  }

  /** Binds the attempt's record: from now on every decision is written into it. */
  bind(record: AttemptRecord): void {
    this.#record = record;
    if (this.#override !== undefined) {
      record.overrides.push(
        `fleet.window: the maintenance window was not waited for (${this.#override}).`,
      );
    }
    if (this.#slot) live.set(record.id, this);
    this.#update();
  }

  #decided(decision: FleetDecision, all: readonly FleetDecision[]): void {
    this.#mine = all;
    const record = this.#record;
    const log = this.#context.log;
    const fields = {
      backend: decision.backend,
      group: decision.group,
      host_id: decision.host_id,
      ...(record ? { attempt: record.id } : {}),
    };
    switch (decision.kind) {
      case "slot-acquired":
        log.event(
          "fleet-slot-acquired",
          `Took fleet slot of group "${decision.group}" (${this.#fleet.backend.description}); ` +
            "the update may change the host now.",
          fields,
        );
        break;
      case "slot-kept":
        log.event(
          "fleet-slot-kept",
          `Keeping the fleet slot of group "${decision.group}" after a failed update; the ` +
            `rollout halts until an operator runs 'liveupdate-agent fleet release ` +
            `${decision.host_id}'.`,
          { ...fields, reason: String(decision.fields.reason ?? "") },
        );
        break;
      case "slot-released":
        log.event(
          "fleet-slot-released",
          `Released the fleet slot of group "${decision.group}": the host is healthy after its ` +
            "update.",
          fields,
        );
        break;
    }
    this.#update();
  }

  /** Writes notes.fleet and the fleet timings into the bound record. */
  #update(state?: SlotNoteState): void {
    const record = this.#record;
    if (!record) return;
    const before = fleetNotes(record);
    const notes: FleetNotes = {
      backend: this.#fleet.backend.name,
      group: this.#fleet.group,
      host_id: this.#fleet.hostId,
      slots: this.#fleet.slots,
      slot: this.#slot?.record ?? before?.slot ?? null,
      state: state ?? (this.#slot ? noteState(this.#slot) : before?.state ?? "none"),
      ...(this.#override !== undefined ? { override: this.#override } : {}),
      ...(before?.error !== undefined ? { error: before.error } : {}),
      decisions: this.decisions,
    };
    record.notes.fleet = notes;
    const timing: Partial<Record<FleetDecision["kind"], string>> = {
      "slot-acquired": "slot_acquired",
      "slot-persisted": "slot_persisted",
      "health-passed": "healthy",
      "slot-released": "slot_released",
      "slot-kept": "slot_kept",
      "slot-abandoned": "slot_abandoned",
    };
    for (const decision of this.#mine) {
      const key = timing[decision.kind];
      if (key && record.timings[key] === undefined) record.timings[key] = decision.time;
    }
  }

  /** Records a problem with the fleet backend; the slot stays as it was. */
  #failed(what: string, error: unknown): string {
    const message = `${what}: ${describeError(error)}`;
    this.#context.log.error(`${message}. The fleet slot stays as it was.`);
    if (this.#record) {
      const notes = fleetNotes(this.#record);
      if (notes) notes.error = message;
    }
    return message;
  }

  /** Makes the slot permanent (before `1 > prepare`); throws FleetSlotLostError. */
  async persist(stage: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.#slot!.persist(stage, signal);
    } finally {
      this.#update();
    }
  }

  /**
   * Keeps the slot after a failure, so the rollout halts. A problem with the
   * backend is logged and recorded, never thrown: the rollback must go on.
   */
  async keep(reason: string, stage: string): Promise<void> {
    const slot = this.#slot;
    if (!slot || slot.state === "kept") return;
    try {
      await slot.keep(reason, { stage });
    } catch (error) {
      this.#failed("Keeping the fleet slot failed", error);
    } finally {
      this.#update();
    }
  }

  /** Frees a lease-bound slot unused (nothing changed, or rolled back after the agent died). */
  async abandon(reason: string): Promise<void> {
    const slot = this.#slot;
    if (!slot || slot.state !== "held") return;
    try {
      await slot.abandon(reason);
    } catch (error) {
      this.#failed("Freeing the unused fleet slot failed", error);
    } finally {
      this.#update();
    }
  }

  /**
   * Frees the slot once `gate` says the host is healthy; keeps it when the host
   * does not become healthy within fleet.health.timeout. Returns the problem, if
   * the slot was not freed.
   */
  async release(gate: HealthGate): Promise<string | undefined> {
    const slot = this.#slot;
    if (!slot || (slot.state !== "held" && slot.state !== "persistent")) return undefined;
    try {
      const outcome = await slot.release(gate);
      return outcome.released
        ? undefined
        : `the host did not pass the fleet health gate (${outcome.reason}); its fleet slot is ` +
          "kept";
    } catch (error) {
      return `${this.#failed("Releasing the fleet slot failed", error)}; it stays held`;
    } finally {
      this.#update();
    }
  }

  /** Stops background work (the lease keeper) without freeing the slot. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#record && live.get(this.#record.id) === this) live.delete(this.#record.id);
    await this.#slot?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** systemd's view of units, for the health gate. */
export function unitStateReader(manager: SystemdManager): UnitStateReader {
  return {
    async activeState(unit) {
      const [status] = await manager.unitStatuses([unit]);
      if (!status) return "unknown";
      return status.loadState === "not-found" ? "not-found" : status.activeState;
    },
  };
}

/**
 * The devices the attempt preserved that are not reclaimed: those the kernel
 * shows preserved and not reclaimed now, and those the reclaim step found
 * unreclaimed before the kernel's finish cleared the flags.
 */
export function reclaimReader(kernel: Kernel | undefined, record: AttemptRecord): ReclaimReader {
  const plan = record.plan as unknown as Partial<Plan>;
  const paths = [
    ...new Set([
      ...(plan.devices?.selected ?? []).map((device) => device.path),
      ...(plan.devices?.ancestors ?? []),
    ]),
  ];
  return {
    async unreclaimed() {
      const left = new Set<string>();
      const summary = record.notes.devices as
        | { unreclaimed_devices?: { path: string }[] }
        | undefined;
      for (const device of summary?.unreclaimed_devices ?? []) left.add(device.path);
      const devices = kernel?.devices;
      if (devices) {
        for (const path of paths) {
          const flags = await devices.readDevice(path);
          if (flags.preserved && !flags.reclaimed) left.add(path);
        }
      }
      return [...left].sort();
    },
  };
}

/** The health gate of `fleet.health`, over systemd and the kernel's reclaimed flags. */
export function flowHealthGate(
  context: UpdateContext,
  record: AttemptRecord,
  manager: SystemdManager,
  kernel: Kernel | undefined,
): HealthGate {
  return configuredHealthGate(context.config.fleet.health, {
    units: unitStateReader(manager),
    devices: reclaimReader(kernel, record),
  });
}

/** This process's attempt for `record`, or the slot found again through the backend. */
async function attemptFor(
  context: UpdateContext,
  record: AttemptRecord,
): Promise<FleetAttempt | undefined> {
  const notes = fleetNotes(record);
  if (!context.fleet || !notes || !UNSETTLED.has(notes.state)) return undefined;
  const held = live.get(record.id);
  if (held) return held;
  // Finding the slot already failed in this process (after fleet.wait_timeout of retries).
  if (unreachable.has(record.id)) return undefined;
  const attempt = new FleetAttempt(context, context.fleet);
  try {
    await attempt.resume(record);
  } catch (error) {
    const message = `Finding the fleet slot of attempt ${record.id} failed: ` +
      describeError(error);
    context.log.error(`${message}. The fleet slot stays as it was.`);
    notes.error = message;
    unreachable.add(record.id);
    await attempt.close();
    return undefined;
  }
  return attempt;
}

/**
 * After the finish steps: with `failures`, keeps the slot; otherwise waits for
 * the health gate and releases it (or keeps it when the host stays unhealthy).
 * Returns the problem that makes the attempt fail, if any.
 */
export async function settleSlotAfterFinish(
  context: UpdateContext,
  record: AttemptRecord,
  kernel: Kernel,
  manager: SystemdManager,
  failures: readonly string[],
): Promise<string | undefined> {
  const attempt = await attemptFor(context, record);
  if (!attempt) return undefined;
  try {
    if (failures.length > 0) {
      await attempt.keep(`finish failed: ${failures.join("; ")}`, "finish");
      return undefined;
    }
    return await attempt.release(flowHealthGate(context, record, manager, kernel));
  } finally {
    await attempt.close();
  }
}

/**
 * Settles the slot of an attempt that is being closed with `result` (called by
 * closeRecord; does nothing when the attempt holds no unsettled slot): refused →
 * abandoned; rolled back or failed → kept (a lease-bound slot of an agent that
 * died is freed when its rollback was complete); cancelled or succeeded →
 * released once the host is healthy.
 */
export async function settleSlotOnClose(
  context: UpdateContext,
  record: AttemptRecord,
  result: AttemptStatus,
  message: string,
): Promise<void> {
  const attempt = await attemptFor(context, record);
  if (!attempt) return;
  try {
    switch (result) {
      case "refused":
        await attempt.abandon(message);
        break;
      case "rolled-back":
        if (attempt.resumed && attempt.slot?.state === "held") {
          await attempt.abandon(
            "the agent died before the point of no return and the host is rolled back",
          );
        } else {
          await attempt.keep(message, "rollback");
        }
        break;
      case "cancelled":
      case "succeeded": {
        const manager = await context.systemd().catch(() => undefined);
        if (!manager) {
          await attempt.keep(
            `${message} (systemd cannot be asked about the host's health)`,
            result,
          );
          break;
        }
        const problem = await attempt.release(flowHealthGate(context, record, manager, undefined));
        if (problem) context.log.warning(`Attempt ${record.id}: ${problem}.`);
        break;
      }
      default:
        await attempt.keep(message, result);
    }
  } finally {
    await attempt.close();
  }
}

/**
 * The fleet layer's runtime state for the metrics file; undefined without a
 * fleet backend or when the state file cannot be read.
 */
export async function fleetStateForMetrics(
  context: UpdateContext,
): Promise<FleetRuntimeState | undefined> {
  if (context.config.fleet.backend === "none") return undefined;
  try {
    return await readFleetState(context.fs, context.config.paths.runtime_dir);
  } catch (error) {
    context.log.debug(`No fleet state for the metrics: ${describeError(error)}`);
    return undefined;
  }
}

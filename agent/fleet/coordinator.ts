/**
 * The fleet layer's API for the update flow.
 *
 * ```ts
 * const fleet = await createFleet(config, host, log);       // undefined: backend "none"
 * const slot = await fleet.acquire({ override, attempt, onDecision });  // waits: window, slot
 * // … preflight passed, nothing changed yet …
 * // undo-able steps (device requests, phase "prepare" units): the slot is bound to a
 * // lease; watch slot.signal (aborted when it is lost) and call slot.assertHeld().
 * await slot.persist("kernel-prepare");                     // before `1 > prepare`
 * // … prepare, reboot units, record slot.record, kexec …
 *
 * // in the new kernel, liveupdate-finish:
 * const slot = await fleet.resume({ record });              // the persistent slot
 * // … finish …
 * const outcome = await slot.release(gate);                 // health gate, then free
 *
 * // on failure (rolled back, finish failed, unhealthy):
 * await slot.keep("rolled back: unit vmm.service failed"); // slot kept: rollout halts
 * // refused after acquire with nothing changed:
 * await slot.abandon("preflight refused");
 * ```
 *
 * Every decision is logged with structured fields and handed to `onDecision`
 * (with the list so far) for the attempt record; `slot.decisions` has them too.
 * The runtime state file (`<runtime_dir>/fleet.json`) shows the wait and the slot
 * to `status`, `fleet status` and the metrics writer.
 *
 * @module
 */

import type { Clock } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import type {
  BackendHold,
  FleetBackend,
  HolderInfo,
  SlotRecord,
  SlotRequest,
  TryAcquireResult,
} from "./backend.ts";
import {
  type DecisionContext,
  DecisionLog,
  type DecisionSink,
  type FleetDecision,
} from "./decision.ts";
import {
  FleetBackendError,
  FleetError,
  FleetSlotKeptError,
  FleetSlotLostError,
  FleetTimeoutError,
} from "./fleet_error.ts";
import type { HealthGate, HealthReport } from "./health.ts";
import { backoff, jittered } from "./retry.ts";
import {
  FLEET_STATE_VERSION,
  type FleetPhase,
  type FleetRuntimeState,
  type FleetStateFile,
} from "./state_file.ts";
import {
  describeWindow,
  formatWindowTime,
  type WindowSpec,
  type WindowStatus,
  windowStatus,
} from "./window.ts";

/** The longest single sleep while waiting for a window (the window is re-read after). */
const MAX_WINDOW_SLEEP_MS = 5 * 60_000;
/** How often a release or a permanent write is tried before giving up. */
const WRITE_TRIES = 5;

/** Options of {@link FleetCoordinator}. */
export interface FleetCoordinatorOptions {
  backend: FleetBackend;
  hostId: string;
  group: string;
  /** The group's slot count. */
  slots: number;
  /** The maintenance window; undefined for none. */
  window: WindowSpec | undefined;
  waitTimeoutMs: number;
  retryIntervalMs: number;
  retryJitterPercent: number;
  healthTimeoutMs: number;
  healthIntervalMs: number;
  clock: Clock;
  log: Logger;
  info: Omit<HolderInfo, "attempt">;
  stateFile?: FleetStateFile;
  /** Numbers in [0, 1) for jitter (tests pass a fixed one). */
  random?: () => number;
  /** The process id written to the state file. */
  pid?: number;
}

/** Options of {@link FleetCoordinator.acquire}. */
export interface AcquireOptions {
  /**
   * Start without waiting for the maintenance window (`prepare --now`); the reason
   * is recorded. It never skips the slot.
   */
  override?: { reason: string };
  /** The update attempt's id, stored with the slot. */
  attempt?: string;
  /** Aborting stops the wait (the call rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Receives each decision as it is made. */
  onDecision?: DecisionSink;
}

/** Options of {@link FleetCoordinator.resume}. */
export interface ResumeOptions {
  /** The slot record the old kernel's agent wrote in the attempt record. */
  record?: SlotRecord;
  attempt?: string;
  signal?: AbortSignal;
  onDecision?: DecisionSink;
}

/** What {@link FleetSlot.release} did. */
export type ReleaseOutcome =
  | { released: true; health: HealthReport | undefined; decisions: readonly FleetDecision[] }
  | {
    released: false;
    /** The slot is kept: the host did not become healthy in time. */
    kept: true;
    reason: string;
    health: HealthReport;
    decisions: readonly FleetDecision[];
  };

/** Where a slot stands. */
export type SlotState =
  /** Held before the point of no return (etcd: bound to a lease, a dead host frees it). */
  | "held"
  /** Made permanent by `persist`: survives the agent, the kexec and the host. */
  | "persistent"
  /** Kept after a failure: halts the rollout until an operator frees it. */
  | "kept"
  | "released"
  | "abandoned"
  /** Lost while lease-bound: the update must not go on. */
  | "lost";

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function iso(date: Date | undefined): string | null {
  return date ? date.toISOString() : null;
}

/** Tracks the runtime state and writes the state file on every change. */
class StateTracker {
  #state: FleetRuntimeState;
  readonly #file: FleetStateFile | undefined;
  readonly #clock: Pick<Clock, "now">;

  constructor(
    base: Omit<FleetRuntimeState, "since" | "updated_at">,
    file: FleetStateFile | undefined,
    clock: Pick<Clock, "now">,
  ) {
    const now = clock.now().toISOString();
    this.#state = { ...base, since: now, updated_at: now };
    this.#file = file;
    this.#clock = clock;
  }

  get state(): FleetRuntimeState {
    return this.#state;
  }

  async set(
    patch: Partial<FleetRuntimeState>,
    remove: (keyof FleetRuntimeState)[] = [],
  ): Promise<void> {
    const now = this.#clock.now().toISOString();
    const next: FleetRuntimeState = { ...this.#state, ...patch, updated_at: now };
    if (patch.phase !== undefined && patch.phase !== this.#state.phase) next.since = now;
    for (const key of remove) delete next[key];
    this.#state = next;
    await this.#file?.write(next);
  }
}

/** Takes, keeps and frees this host's slot in the fleet. */
export class FleetCoordinator {
  readonly #options: FleetCoordinatorOptions;

  constructor(options: FleetCoordinatorOptions) {
    this.#options = options;
  }

  /** The backend, for `fleet status` and `fleet release`. */
  get backend(): FleetBackend {
    return this.#options.backend;
  }

  /** This host's id. */
  get hostId(): string {
    return this.#options.hostId;
  }

  /** This host's group. */
  get group(): string {
    return this.#options.group;
  }

  /** The group's slot count. */
  get slots(): number {
    return this.#options.slots;
  }

  /** The maintenance window (undefined: none). */
  get window(): WindowSpec | undefined {
    return this.#options.window;
  }

  /** Whether the window is open now. */
  windowStatus(now: Date = this.#options.clock.now()): WindowStatus {
    return windowStatus(this.#options.window, now);
  }

  /** Closes the backend's connections. */
  close(): void {
    this.#options.backend.close();
  }

  #request(attempt?: string): SlotRequest {
    return {
      id: this.#options.hostId,
      group: this.#options.group,
      slots: this.#options.slots,
      info: { ...this.#options.info, ...(attempt ? { attempt } : {}) },
    };
  }

  #context(): DecisionContext {
    return {
      backend: this.#options.backend.name,
      group: this.#options.group,
      host_id: this.#options.hostId,
    };
  }

  #tracker(phase: FleetPhase): StateTracker {
    const status = this.windowStatus();
    return new StateTracker(
      {
        version: FLEET_STATE_VERSION,
        pid: this.#options.pid ?? Deno.pid,
        host_id: this.#options.hostId,
        group: this.#options.group,
        backend: this.#options.backend.name,
        phase,
        attempts: 0,
        window: this.#windowState(status),
      },
      this.#options.stateFile,
      this.#options.clock,
    );
  }

  #windowState(status: WindowStatus): FleetRuntimeState["window"] {
    const state: FleetRuntimeState["window"] = {
      description: describeWindow(this.#options.window),
      open: status.open,
    };
    if (status.opensAt) state.opens_at = status.opensAt.toISOString();
    if (status.closesAt) state.closes_at = status.closesAt.toISOString();
    return state;
  }

  /**
   * Waits for the maintenance window (unless `override`) and a slot, with jittered
   * retries bounded by `fleet.wait_timeout`, and returns the held slot. Throws
   * {@link FleetTimeoutError} (exit 8) when the wait runs out,
   * {@link FleetSlotKeptError} (exit 5) when this host keeps a slot from a failed
   * update, and the signal's reason when aborted. Nothing on the host changes.
   */
  async acquire(options: AcquireOptions = {}): Promise<FleetSlot> {
    const tracker = this.#tracker("waiting-slot");
    try {
      return await this.#acquire(options, tracker);
    } catch (error) {
      if (tracker.state.phase === "waiting-slot" || tracker.state.phase === "waiting-window") {
        await tracker.set({
          phase: "stopped",
          last_decision: {
            kind: "stopped",
            message: errorMessage(error),
            time: this.#options.clock.now().toISOString(),
          },
        }, ["next_attempt_at"]);
      }
      throw error;
    }
  }

  async #acquire(options: AcquireOptions, tracker: StateTracker): Promise<FleetSlot> {
    const { clock, window } = this.#options;
    const decisions = new DecisionLog(
      this.#options.log,
      clock,
      this.#context(),
      options.onDecision,
    );
    const request = this.#request(options.attempt);
    const signal = options.signal;
    const deadline = clock.monotonic() + this.#options.waitTimeoutMs;
    const random = this.#options.random ?? Math.random;
    const started = clock.now().toISOString();
    await tracker.set({ wait_started_at: started });
    if (options.override) {
      await decisions.decide(
        "window-override",
        `Starting without waiting for the maintenance window (${describeWindow(window)}): ` +
          `${options.override.reason}.`,
        { reason: options.override.reason, window: describeWindow(window) },
      );
      await tracker.set({
        override: { reason: options.override.reason, at: clock.now().toISOString() },
      });
    }
    let failures = 0;
    let windowWasOpen = false;
    // When to wake for the window: its opening plus a random spread, so hosts
    // waking at the very opening do not all ask at once.
    let wakeAt: number | undefined;
    const remaining = () => deadline - clock.monotonic();
    const timeout = async (why: string) => {
      await decisions.decide("wait-timeout", why, {
        waited_since: started,
        attempts: tracker.state.attempts,
      });
      await tracker.set({ phase: "timed-out", last_decision: this.#summary(decisions) }, [
        "next_attempt_at",
      ]);
      return new FleetTimeoutError(`${why} Nothing on this host was changed.`);
    };
    for (;;) {
      signal?.throwIfAborted();
      if (!options.override) {
        const status = this.windowStatus();
        if (!status.open) {
          windowWasOpen = false;
          const opensAt = status.opensAt!;
          await decisions.decide(
            "window-closed",
            `The maintenance window (${describeWindow(window)}) is closed; waiting until ` +
              `${formatWindowTime(window, opensAt)}.`,
            { opens_at: opensAt.toISOString() },
          );
          if (wakeAt === undefined || wakeAt < opensAt.getTime()) {
            wakeAt = opensAt.getTime() + Math.floor(random() * this.#options.retryIntervalMs);
          }
          const wait = wakeAt - clock.now().getTime();
          if (wait > remaining()) {
            throw await timeout(
              `The maintenance window opens at ${formatWindowTime(window, opensAt)}, after ` +
                "fleet.wait_timeout runs out.",
            );
          }
          await tracker.set({
            phase: "waiting-window",
            window: this.#windowState(status),
            next_attempt_at: new Date(clock.now().getTime() + wait).toISOString(),
            last_decision: this.#summary(decisions),
          });
          await clock.sleep(Math.min(wait, MAX_WINDOW_SLEEP_MS), signal);
          continue;
        }
        if (wakeAt !== undefined && clock.now().getTime() < wakeAt) {
          // Open, but this host's spread after the opening has not passed yet.
          await clock.sleep(wakeAt - clock.now().getTime(), signal);
          continue;
        }
        wakeAt = undefined;
        if (!windowWasOpen) {
          windowWasOpen = true;
          await decisions.decide(
            "window-open",
            status.always
              ? "No maintenance window is configured: updates may start any time."
              : `The maintenance window (${describeWindow(window)}) is open` +
                (status.closesAt ? ` until ${formatWindowTime(window, status.closesAt)}.` : "."),
            { closes_at: iso(status.closesAt) },
          );
          await tracker.set({ window: this.#windowState(status) });
        }
      }
      await tracker.set({ phase: "waiting-slot", attempts: tracker.state.attempts + 1 });
      let result: TryAcquireResult | undefined;
      let delay: number;
      try {
        result = await this.#options.backend.tryAcquire(request, signal);
        failures = 0;
      } catch (error) {
        if (!(error instanceof FleetBackendError)) throw error;
        failures++;
        await decisions.decide("backend-error", error.message, {
          endpoint: error.endpoint ?? null,
          kind: error.kind ?? null,
          failures,
          retryable: error.retryable,
        });
        if (!error.retryable) {
          await tracker.set({ phase: "failed", last_decision: this.#summary(decisions) }, [
            "next_attempt_at",
          ]);
          throw error;
        }
      }
      if (result?.granted) {
        const decision = await decisions.decide(
          "slot-acquired",
          `Took a slot of group "${request.group}" (${request.slots} slot(s)).`,
          result.fields,
        );
        await tracker.set({
          phase: "holding",
          slot: result.hold.record,
          last_decision: this.#summary(decisions),
        }, ["next_attempt_at", "blocked_by"]);
        return new FleetSlot(
          this.#options,
          result.hold,
          request,
          decisions,
          tracker,
          decision.time,
          "held",
        );
      }
      if (result) {
        if (result.reason === "kept") {
          await decisions.decide("slot-kept", result.message, result.fields);
          await tracker.set({ phase: "kept", last_decision: this.#summary(decisions) }, [
            "next_attempt_at",
          ]);
          throw new FleetSlotKeptError(
            `${result.message} No new update starts until an operator has looked and freed it ` +
              `with 'liveupdate-agent fleet release ${request.id}'. Nothing on this host was changed.`,
          );
        }
        await decisions.decide(
          result.reason === "halted" ? "fleet-halted" : "slot-busy",
          result.message,
          { ...result.fields, reason: result.reason },
        );
        await tracker.set({ blocked_by: result.holders });
        delay = jittered(this.#options.retryIntervalMs, this.#options.retryJitterPercent, random);
      } else {
        delay = backoff(
          this.#options.retryIntervalMs,
          failures,
          this.#options.retryJitterPercent,
          random,
        );
      }
      if (delay > remaining()) {
        throw await timeout(
          `No fleet slot within fleet.wait_timeout (${tracker.state.attempts} tries): ` +
            `${decisions.last?.message ?? "no answer"}`,
        );
      }
      await tracker.set({
        next_attempt_at: new Date(clock.now().getTime() + delay).toISOString(),
        last_decision: this.#summary(decisions),
      });
      await clock.sleep(delay, signal);
    }
  }

  /**
   * Finds the slot this host took before (the old kernel's agent, or a process
   * that died); undefined when it holds none. `record` is the slot record from
   * the attempt record (for messages; the backend is asked either way). Backend
   * errors (the network may still be coming up after the kexec) are retried with
   * back-off within `fleet.wait_timeout`.
   */
  async resume(options: ResumeOptions = {}): Promise<FleetSlot | undefined> {
    const decisions = new DecisionLog(
      this.#options.log,
      this.#options.clock,
      this.#context(),
      options.onDecision,
    );
    const request = this.#request(options.attempt);
    // After the kexec the network may still be coming up: retry within wait_timeout.
    const { clock } = this.#options;
    const deadline = clock.monotonic() + this.#options.waitTimeoutMs;
    let hold: BackendHold | undefined;
    for (let failures = 1;; failures++) {
      try {
        hold = await this.#options.backend.resume(request, options.signal);
        break;
      } catch (error) {
        if (!(error instanceof FleetBackendError) || !error.retryable) throw error;
        await decisions.decide("backend-error", `Finding this host's slot: ${error.message}`, {
          endpoint: error.endpoint ?? null,
          kind: error.kind ?? null,
          failures,
        });
        const delay = backoff(
          this.#options.retryIntervalMs,
          failures,
          this.#options.retryJitterPercent,
          this.#options.random,
        );
        if (clock.monotonic() + delay > deadline) throw error;
        await clock.sleep(delay, options.signal);
      }
    }
    if (hold === undefined) {
      await decisions.decide(
        "slot-missing",
        `This host holds no slot in group "${request.group}" any more (an operator freed it).`,
        { recorded_key: options.record?.key ?? null },
      );
      return undefined;
    }
    await decisions.decide("slot-resumed", `Found this host's slot in group "${request.group}".`, {
      key: hold.record.key ?? null,
      lease_bound: hold.leaseBound,
    });
    const tracker = this.#tracker(hold.leaseBound ? "holding" : "persistent");
    await tracker.set({ slot: hold.record, last_decision: this.#summary(decisions) });
    return new FleetSlot(
      this.#options,
      hold,
      request,
      decisions,
      tracker,
      hold.record.acquired_at,
      hold.leaseBound ? "held" : "persistent",
    );
  }

  #summary(decisions: DecisionLog): FleetRuntimeState["last_decision"] {
    const last = decisions.last;
    return last
      ? { kind: last.kind, message: last.message, time: last.last_time ?? last.time }
      : undefined;
  }
}

/** This host's slot. */
export class FleetSlot {
  readonly #options: FleetCoordinatorOptions;
  readonly #hold: BackendHold;
  readonly #request: SlotRequest;
  readonly #decisions: DecisionLog;
  readonly #tracker: StateTracker;
  readonly #acquiredAt: string;
  #state: SlotState;
  #pending: Promise<unknown> = Promise.resolve();

  constructor(
    options: FleetCoordinatorOptions,
    hold: BackendHold,
    request: SlotRequest,
    decisions: DecisionLog,
    tracker: StateTracker,
    acquiredAt: string,
    state: "held" | "persistent",
  ) {
    this.#options = options;
    this.#hold = hold;
    this.#request = request;
    this.#decisions = decisions;
    this.#tracker = tracker;
    this.#acquiredAt = acquiredAt;
    this.#state = state;
    hold.lost.addEventListener("abort", () => {
      if (this.#state !== "held") return;
      this.#state = "lost";
      const reason = errorMessage(hold.lost.reason);
      this.#pending = this.#pending.then(async () => {
        await this.#decisions.decide("slot-lost", reason, { key: hold.record.key ?? null });
        await this.#tracker.set({ phase: "lost", last_decision: this.#last() });
      }).catch(() => {});
    }, { once: true });
  }

  /** Where the slot stands. */
  get state(): SlotState {
    return this.#state;
  }

  /** Whether the backend frees the slot by itself if this host dies (an etcd lease). */
  get leaseBound(): boolean {
    return this.#hold.leaseBound;
  }

  /** Where the slot is held, for the attempt record (the finish process resumes it). */
  get record(): SlotRecord {
    return this.#hold.record;
  }

  /** When the slot was taken. */
  get acquiredAt(): string {
    return this.#acquiredAt;
  }

  /** Every decision so far (the wait included), for the attempt record. */
  get decisions(): readonly FleetDecision[] {
    return this.#decisions.decisions;
  }

  /**
   * Aborted, with a {@link FleetSlotLostError} as reason, when the slot is lost
   * while lease-bound. Pass it to long steps; roll back when it fires.
   */
  get signal(): AbortSignal {
    return this.#hold.lost;
  }

  /** Throws the {@link FleetSlotLostError} when the slot was lost. */
  assertHeld(): void {
    this.#hold.lost.throwIfAborted();
  }

  #last(): FleetRuntimeState["last_decision"] {
    const last = this.#decisions.last;
    return last
      ? { kind: last.kind, message: last.message, time: last.last_time ?? last.time }
      : undefined;
  }

  async #retry<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let failures = 1;; failures++) {
      try {
        return await fn();
      } catch (error) {
        if (!(error instanceof FleetBackendError) || !error.retryable || failures >= WRITE_TRIES) {
          throw error;
        }
        if (this.#hold.lost.aborted) throw this.#hold.lost.reason;
        await this.#decisions.decide("backend-error", `${what}: ${error.message}`, {
          endpoint: error.endpoint ?? null,
          kind: error.kind ?? null,
          failures,
        });
        const delay = backoff(
          Math.min(this.#options.retryIntervalMs, 1000),
          failures,
          this.#options.retryJitterPercent,
          this.#options.random,
        );
        const guard = signal ? AbortSignal.any([signal, this.#hold.lost]) : this.#hold.lost;
        await this.#options.clock.sleep(delay, guard);
      }
    }
  }

  /**
   * Makes the slot permanent before the first step that cannot be undone without
   * a reboot (writing the kernel's prepare): from here on it survives the agent,
   * the kexec and the host, and only a healthy finish or an operator frees it.
   * Throws {@link FleetSlotLostError} when the slot was lost: then do not go on.
   */
  async persist(stage: string, signal?: AbortSignal): Promise<void> {
    await this.#pending;
    if (this.#state === "persistent") return;
    if (this.#state !== "held") throw this.#wrongState("persist");
    let fields;
    try {
      fields = await this.#retry(
        "Making the slot permanent",
        () => this.#hold.persist({ stage, failed: false }, signal),
        signal,
      );
    } catch (error) {
      if (error instanceof FleetSlotLostError) {
        await this.#pending;
        if (this.#state === "held") {
          this.#state = "lost";
          await this.#decisions.decide("slot-lost", error.message, { stage });
          await this.#tracker.set({ phase: "lost", last_decision: this.#last() });
        }
      }
      throw error;
    }
    this.#state = "persistent";
    await this.#decisions.decide(
      "slot-persisted",
      `The slot is now permanent (stage "${stage}"): it outlives this agent and the kexec, and ` +
        "only a healthy finish or an operator frees it.",
      fields,
    );
    await this.#tracker.set({ phase: "persistent", last_decision: this.#last() });
  }

  /**
   * Keeps the slot after a failed or rolled-back update, recording `reason`: the
   * rollout halts (per `fleet.etcd.halt`) until an operator runs
   * `liveupdate-agent fleet release`. `stage` names where it failed (default: the
   * last stage recorded). If the slot was already lost, a halt mark
   * is written instead (etcd), so the failure still stops the rollout.
   */
  async keep(
    reason: string,
    options: { stage?: string; signal?: AbortSignal } = {},
  ): Promise<void> {
    const { stage, signal } = options;
    await this.#pending;
    if (this.#state === "kept") return;
    if (this.#state === "released" || this.#state === "abandoned") throw this.#wrongState("keep");
    if (this.#state === "lost") {
      const halted = await this.#retry(
        "Halting the rollout",
        () => this.#options.backend.halt(this.#request, reason, signal),
        signal,
      );
      await this.#decisions.decide(
        "slot-kept",
        halted
          ? `The update failed after its slot was lost; the rollout is halted instead: ${reason}.`
          : `The update failed after its slot was lost: ${reason}.`,
        { reason, slot: "lost", halt: halted },
      );
      await this.#tracker.set({ last_decision: this.#last() });
      return;
    }
    let fields;
    try {
      fields = await this.#retry(
        "Keeping the slot",
        () => this.#hold.persist({ ...(stage ? { stage } : {}), failed: true, reason }, signal),
        signal,
      );
    } catch (error) {
      if (!(error instanceof FleetSlotLostError)) throw error;
      // The slot went (lease expired, operator freed it): the failure still halts.
      await this.#pending;
      // The lease keeper's listener may have marked it lost meanwhile.
      if ((this.#state as SlotState) !== "lost") {
        this.#state = "lost";
        await this.#decisions.decide("slot-lost", error.message, { stage: stage ?? null });
        await this.#tracker.set({ phase: "lost", last_decision: this.#last() });
      }
      return await this.keep(reason, options);
    }
    this.#state = "kept";
    await this.#decisions.decide(
      "slot-kept",
      `Keeping the slot after a failed update, so the rollout halts until an operator looks ` +
        `('liveupdate-agent fleet release ${this.#request.id}'): ${reason}.`,
      { ...fields, reason },
    );
    await this.#tracker.set({ phase: "kept", last_decision: this.#last() });
  }

  /**
   * Frees a slot that is still lease-bound, when the update stopped before changing
   * anything (preflight refused after the wait). A permanent slot is freed only by
   * {@link release} after a healthy finish, or kept.
   */
  async abandon(reason: string, signal?: AbortSignal): Promise<void> {
    await this.#pending;
    if (this.#state === "abandoned" || this.#state === "lost") return;
    if (this.#state !== "held") throw this.#wrongState("abandon");
    const result = await this.#retry("Freeing the slot", () => this.#hold.release(signal), signal);
    this.#state = "abandoned";
    await this.#decisions.decide("slot-abandoned", `Freed the slot unused: ${reason}.`, {
      ...result.fields,
      reason,
    });
    await this.#tracker.set({ phase: "abandoned", last_decision: this.#last() });
  }

  /**
   * After a successful finish: waits until `gate` says the host is healthy (every
   * `fleet.health.interval`, at most `fleet.health.timeout`), then frees the slot.
   * When the host does not become healthy, keeps the slot (the rollout halts) and
   * returns `released: false`. A slot an operator already freed counts as released.
   */
  async release(gate: HealthGate | undefined, signal?: AbortSignal): Promise<ReleaseOutcome> {
    await this.#pending;
    if (this.#state !== "held" && this.#state !== "persistent") throw this.#wrongState("release");
    const { clock } = this.#options;
    let report: HealthReport | undefined;
    if (gate) {
      const deadline = clock.monotonic() + this.#options.healthTimeoutMs;
      await this.#tracker.set({ phase: "waiting-health" });
      for (;;) {
        report = await gate.check(signal);
        const failing = report.checks.filter((check) => !check.ok);
        if (report.healthy) {
          await this.#decisions.decide("health-passed", "The host is healthy again.", {
            checks: report.checks.map((check) => `${check.name}: ${check.detail}`).join("; ") ||
              null,
          });
          break;
        }
        const detail = failing.map((check) => `${check.name}: ${check.detail}`).join("; ");
        if (clock.monotonic() + this.#options.healthIntervalMs > deadline) {
          await this.#decisions.decide(
            "health-failed",
            `The host did not become healthy within fleet.health.timeout: ${detail}.`,
            { failing: detail },
          );
          const reason = `unhealthy after finish: ${detail}`;
          await this.keep(reason, { stage: "health-gate", signal });
          return { released: false, kept: true, reason, health: report, decisions: this.decisions };
        }
        await this.#decisions.decide(
          "health-waiting",
          `Waiting for the host to be healthy: ${detail}.`,
          {
            failing: detail,
          },
        );
        await clock.sleep(this.#options.healthIntervalMs, signal);
      }
    }
    const result = await this.#retry("Freeing the slot", () => this.#hold.release(signal), signal);
    this.#state = "released";
    await this.#decisions.decide(
      result.outcome === "released" ? "slot-released" : "slot-missing",
      result.outcome === "released"
        ? `Freed the slot of group "${this.#request.group}" after a healthy update.`
        : `The slot of group "${this.#request.group}" was already freed (by an operator).`,
      result.fields,
    );
    await this.#tracker.set({ phase: "released", last_decision: this.#last() });
    return { released: true, health: report, decisions: this.decisions };
  }

  /** Stops background work (the lease keeper) without freeing the slot. */
  async close(): Promise<void> {
    await this.#hold.close();
    await this.#pending;
  }

  #wrongState(action: string): Error {
    if (this.#state === "lost" && this.#hold.lost.reason instanceof Error) {
      return this.#hold.lost.reason;
    }
    return new FleetError(
      `Cannot ${action} the fleet slot of group "${this.#request.group}": it is ${this.#state}.`,
    );
  }
}

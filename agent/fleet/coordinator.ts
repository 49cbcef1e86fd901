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
import { type DecisionContext, DecisionLog, type DecisionSink } from "./decision.ts";
import { FleetBackendError, FleetSlotKeptError, FleetTimeoutError } from "./fleet_error.ts";
import { backoff, jittered } from "./retry.ts";
import { FleetSlot } from "./slot.ts";
import { StateTracker } from "./_state_tracker.ts";
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

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function iso(date: Date | undefined): string | null {
  return date ? date.toISOString() : null;
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

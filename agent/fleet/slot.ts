/**
 * This host's slot, as the update flow holds it: make it permanent before the
 * point of no return, keep it after a failure, free it unused, or free it after
 * a healthy finish (see coordinator.ts for the whole flow).
 *
 * @module
 */

import type { BackendHold, SlotRecord, SlotRequest } from "./backend.ts";
import type { DecisionLog, FleetDecision } from "./decision.ts";
import { FleetBackendError, FleetError, FleetSlotLostError } from "./fleet_error.ts";
import type { HealthGate, HealthReport } from "./health.ts";
import { backoff } from "./retry.ts";
import type { FleetRuntimeState } from "./state_file.ts";
import type { StateTracker } from "./_state_tracker.ts";
import type { FleetCoordinatorOptions } from "./coordinator.ts";

/** How often a release or a permanent write is tried before giving up. */
const WRITE_TRIES = 5;

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

  /** Made by `FleetCoordinator.acquire` and `FleetCoordinator.resume` only. */
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

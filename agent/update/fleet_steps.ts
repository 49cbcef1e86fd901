/**
 * Where the fleet slot sits in a prepare (see fleet_slot.ts for how it ends):
 *
 * 1. preflight (no slot is taken for an update that would be refused anyway);
 * 2. the wait for the maintenance window (unless `--now`, recorded) and a slot,
 *    visible in `status` and the metrics through the fleet state file;
 * 3. preflight again (the wait may have lasted days); a refusal now abandons the
 *    slot, nothing having changed;
 * 4. the journaled step "fleet-slot", first of the prepare: it records the slot
 *    and has no undo that frees it (a failed update keeps its slot);
 * 5. the undo-able steps run while the slot is bound to a lease; a lost lease
 *    stops the run before the next step and rolls back;
 * 6. the journaled step "fleet-persist", just before "prepare-kernel" (`1 >
 *    prepare`): the slot becomes permanent, outliving the agent and the kexec.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { AttemptRecord } from "../store/mod.ts";
import type { UpdateContext } from "./context.ts";
import { FleetAttempt } from "./fleet_slot.ts";
import { preflight, type PreflightResult, type PrepareOptions } from "./preflight.ts";
import { closeRecord, newRecord, refreshMetrics } from "./record.ts";
import type { Step } from "./steps.ts";

/** The journaled steps of the fleet slot (neither has an undo: the slot is settled at the end). */
export const FLEET_STEPS = ["fleet-slot", "fleet-persist"] as const;

/** The stage the slot is made permanent at (shown by `fleet status`). */
export const PERSIST_STAGE = "kernel-prepare";

/** Options of {@link preflightWithSlot}. */
export interface SlotPreflightOptions extends PrepareOptions {
  /** `prepare --now`: start without waiting for the maintenance window (recorded). */
  fleetOverride?: { reason: string };
  /** Aborting stops the wait (SIGTERM). */
  signal?: AbortSignal;
}

/** What {@link preflightWithSlot} found. */
export interface SlottedPreflight {
  /** The preflight that counts (after the wait, when there was one). */
  checked: PreflightResult;
  /**
   * Binds the slot to the attempt's record (notes.fleet, timings); undefined
   * without a fleet or without a slot. Dispose of it at the end of the prepare
   * (it stops the lease keeper; the slot itself is settled when the record is
   * closed).
   */
  attach(record: AttemptRecord): FleetAttempt | undefined;
}

/** How often the metrics file is rewritten while waiting (wait time, tries). */
const METRICS_WHILE_WAITING_MS = 60_000;

/** Rewrites the metrics file soon after each fleet decision and every minute while waiting. */
function metricsWhileWaiting(context: UpdateContext): { poke(): void; stop(): Promise<void> } {
  if (context.config.metrics.file === "") {
    return { poke() {}, stop: () => Promise.resolve() };
  }
  let soon: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  const refresh = () => {
    running = running.then(() => refreshMetrics(context));
  };
  const every = setInterval(refresh, METRICS_WHILE_WAITING_MS);
  return {
    // The state file is written right after the decision: refresh a moment later.
    poke() {
      if (soon === undefined) {
        soon = setTimeout(() => {
          soon = undefined;
          refresh();
        }, 200);
      }
    },
    async stop() {
      clearInterval(every);
      if (soon !== undefined) clearTimeout(soon);
      refresh();
      await running;
    },
  };
}

/**
 * Preflight, and with a fleet: the wait for the maintenance window and a slot,
 * then preflight again. Nothing on the host changes. When the wait ends without
 * a slot (wait_timeout, a slot this host keeps, a backend that refuses, SIGTERM),
 * the attempt is recorded as refused with every fleet decision, and the error is
 * thrown.
 */
export async function preflightWithSlot(
  context: UpdateContext,
  options: SlotPreflightOptions = {},
): Promise<SlottedPreflight> {
  const first = await preflight(context, options);
  const none: SlottedPreflight = { checked: first, attach: () => undefined };
  if (!context.fleet) {
    if (options.fleetOverride) {
      context.log.notice('--now has no effect: fleet.backend is "none" (no maintenance window).');
    }
    return none;
  }
  if (first.problems.length > 0 || !first.kernel) return none;
  const attempt = new FleetAttempt(context, context.fleet);
  const metrics = metricsWhileWaiting(context);
  try {
    await attempt.acquire({
      ...(options.fleetOverride ? { override: options.fleetOverride } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onDecision: () => metrics.poke(),
    });
  } catch (error) {
    await metrics.stop();
    const message = `No fleet slot: ${describeError(error)}`;
    const record = newRecord(context, first.plan, first.overrides);
    attempt.bind(record);
    record.notes.refused = [{ check: "fleet", message }];
    context.log.with({ attempt: record.id }).event("preflight-refused", message, {
      reason: message,
      check: "fleet",
    });
    await context.store.ensure().catch(() => {});
    const code = typeof (error as { exitCode?: unknown }).exitCode === "number"
      ? (error as { exitCode: ExitCode }).exitCode
      : ExitCode.Failed;
    await closeRecord(context, record, "refused", message, code);
    await attempt.close();
    throw error;
  }
  await metrics.stop();
  let checked: PreflightResult;
  try {
    checked = await preflight(context, options);
  } catch (error) {
    await attempt.abandon(`preflight failed after the wait: ${describeError(error)}`);
    await attempt.close();
    throw error;
  }
  return {
    checked,
    attach(record) {
      attempt.bind(record);
      return attempt;
    },
  };
}

/**
 * The prepare's steps with the fleet's: "fleet-slot" first, "fleet-persist"
 * just before "prepare-kernel" (or last, for a kernel without a global state
 * machine: before the kexec). `steps` unchanged without a slot.
 */
export function withFleetSteps(steps: readonly Step[], attempt: FleetAttempt | undefined): Step[] {
  const slot = attempt?.slot;
  if (!attempt || !slot) return [...steps];
  const slotStep: Step = {
    name: "fleet-slot",
    run: () =>
      Promise.resolve({
        slot: slot.record,
        lease_bound: slot.leaseBound,
        acquired_at: slot.acquiredAt,
      }),
  };
  const persistStep: Step = {
    name: "fleet-persist",
    async run() {
      await attempt.persist(PERSIST_STAGE);
      return { stage: PERSIST_STAGE, state: slot.state };
    },
  };
  const at = steps.findIndex((step) => step.name === "prepare-kernel");
  return at < 0
    ? [slotStep, ...steps, persistStep]
    : [slotStep, ...steps.slice(0, at), persistStep, ...steps.slice(at)];
}

/**
 * The fleet steps as undo knows them (recover, cancel): no undo. The slot is
 * settled when the record is closed (kept, abandoned or released).
 */
export function fleetUndoSteps(): Step[] {
  return FLEET_STEPS.map((name) => ({ name, run: () => Promise.resolve(null) }));
}

/** The signal a prepare's steps watch: SIGTERM, or the slot lost while lease-bound. */
export function prepareSignal(
  signal: AbortSignal | undefined,
  attempt: FleetAttempt | undefined,
): AbortSignal | undefined {
  const lost = attempt?.lost;
  if (!lost) return signal;
  return signal ? AbortSignal.any([signal, lost]) : lost;
}

/**
 * `prepare`: preflight, then the journaled steps, then the kexec — what
 * `systemctl start liveupdate-prepare` runs. Any failure before the kexec rolls
 * everything back; the host ends where it started.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { AttemptRecord } from "../store/mod.ts";
import type { UpdateContext } from "./context.ts";
import { preflightWithSlot, prepareSignal, withFleetSteps } from "./fleet_steps.ts";
import type { PrepareOptions } from "./preflight.ts";
import { prepareSteps } from "./prepare_steps.ts";
import { closeRecord, newRecord, noteFailure, saveRecord } from "./record.ts";
import { completeRollback } from "./rollback.ts";
import { runSteps, type UndoOutcome } from "./steps.ts";
import { RefusedError, RolledBackError, UpdateFailedError } from "./update_error.ts";

/** Options of {@link runPrepare}. */
export interface RunPrepareOptions extends PrepareOptions {
  /** Aborting (SIGTERM) before the kexec rolls the update back. */
  signal?: AbortSignal;
  /** `--now`: start without waiting for the fleet's maintenance window (recorded). */
  fleetOverride?: { reason: string };
}

/**
 * Runs a live update up to the kexec. Returns the record when the kexec was issued
 * (or the update stopped at `prepared` as asked). Throws RefusedError (nothing
 * changed), RolledBackError (everything undone) or UpdateFailedError.
 */
export async function runPrepare(
  context: UpdateContext,
  options: RunPrepareOptions = {},
): Promise<AttemptRecord> {
  const { log, clock } = context;
  using _lock = context.lock();
  const start = clock.monotonic();
  // With a fleet: preflight, the wait for a slot, preflight again (fleet_steps.ts).
  const slotted = await preflightWithSlot(context, options);
  const checked = slotted.checked;
  const record = newRecord(context, checked.plan, checked.overrides);
  await using fleet = slotted.attach(record);
  record.timings.preflight_ms = Math.round(clock.monotonic() - start);
  const attemptLog = log.with({ attempt: record.id });
  const flowContext = { ...context, log: attemptLog };

  if (checked.problems.length > 0 || !checked.kernel) {
    const error = new RefusedError(checked.problems);
    record.notes.refused = checked.problems;
    for (const problem of checked.problems) {
      attemptLog.event("preflight-refused", problem.message, {
        reason: problem.message,
        check: problem.check,
      });
    }
    await context.store.ensure().catch(() => {});
    await closeRecord(flowContext, record, "refused", error.message, ExitCode.Refused);
    throw error;
  }
  for (const override of checked.overrides) attemptLog.warning(`Override: ${override}`);

  try {
    await context.store.ensure();
    await saveRecord(context, record);
  } catch (error) {
    // Nothing has changed yet: without a durable record the update must not start.
    throw new RefusedError([{ check: "record", message: describeError(error) }]);
  }
  attemptLog.event(
    "update-started",
    `Live update ${record.id} started: ${checked.plan.running.release ?? "?"} → ` +
      `${checked.plan.target.release ?? checked.plan.target.kernel}.`,
  );
  const kernel = checked.kernel;
  const manager = await context.systemd();
  const signal = prepareSignal(options.signal, fleet);
  const steps = withFleetSteps(
    prepareSteps(flowContext, checked.plan, kernel, manager, signal),
    fleet,
  );
  const runOptions = {
    save: (r: AttemptRecord) => saveRecord(context, r),
    now: () => clock.now(),
    ...(context.onJournal ? { onJournal: context.onJournal } : {}),
    ...(signal ? { signal } : {}),
  };
  const outcome = await runSteps(record, steps, {
    ...runOptions,
    onFailure: (step, error) => {
      noteFailure(record, step, error);
      record.status = "rolling-back";
    },
    onJournal: async (step, status) => {
      if (status === "started") attemptLog.event("step-started", `Step ${step} started.`, { step });
      if (status === "done") attemptLog.event("step-done", `Step ${step} done.`, { step });
      if (status === "failed") attemptLog.event("step-failed", `Step ${step} failed.`, { step });
      await context.onJournal?.(step, status);
    },
  });
  /** Rolls everything back after `step` failed, then throws how that ended. */
  const rollBack = async (
    step: string,
    error: unknown,
    why: string,
    undo?: UndoOutcome,
  ): Promise<never> => {
    noteFailure(record, step, error);
    await fleet?.keep(why, step); // halt the rollout before rolling back
    const rolled = await completeRollback(
      flowContext,
      record,
      checked.plan,
      kernel,
      manager,
      why,
      undo,
    );
    if (rolled.status === "rolled-back") {
      throw new RolledBackError(rolled.message, { cause: error });
    }
    throw new UpdateFailedError(rolled.message, { cause: error });
  };
  if (!outcome.ok) {
    const stopped = signal?.aborted && outcome.error === signal.reason;
    const why = stopped
      ? `Stopped at step "${outcome.failed}": ${describeError(outcome.error)}`
      : `Step "${outcome.failed}" failed: ${describeError(outcome.error)}`;
    return await rollBack(outcome.failed, outcome.error, why, outcome.undo);
  }

  if (signal?.aborted) {
    // Stopped after the last step, before the kexec: still in time to roll back.
    const why = `Stopped before the kexec: ${describeError(signal.reason)}`;
    return await rollBack("kexec", signal.reason, why);
  }
  record.timings.prepared = clock.now().toISOString();
  record.status = checked.plan.stopAtPrepared ? "prepared" : "kexec-issued";
  if (record.status === "kexec-issued") {
    record.timings.kexec_issued = clock.now().toISOString();
    record.timings.prepare_ms = Math.round(clock.monotonic() - start);
  }
  try {
    // The record must say "kexec issued" before the kexec: after the reboot it is
    // how finish knows what happened.
    await saveRecord(context, record);
  } catch (error) {
    const why = `Saving the record before the kexec failed: ${describeError(error)}`;
    attemptLog.error(why);
    return await rollBack("record", error, why);
  }
  if (checked.plan.stopAtPrepared) {
    attemptLog.notice(
      "The update is prepared; issue the kexec ('systemctl kexec') or cancel it " +
        "('liveupdate-agent cancel').",
    );
    return record;
  }
  await context.onJournal?.("kexec", "started");
  attemptLog.event("kexec-issued", "Issuing the kexec into the target kernel.");
  try {
    await context.kexecTrigger(manager).kexec();
  } catch (error) {
    const why = `Issuing the kexec failed: ${describeError(error)}`;
    attemptLog.error(why);
    return await rollBack("kexec", error, why);
  }
  return record;
}

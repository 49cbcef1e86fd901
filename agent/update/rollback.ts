/**
 * Rolling an attempt back: undo every journaled step not undone yet (newest
 * first), then run phase "cancel" so workloads come back, and close the record as
 * rolled back — or failed, naming what could not be put back.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { Kernel } from "../kernel/mod.ts";
import type { AttemptRecord, AttemptStatus } from "../store/mod.ts";
import { runPhase, type SystemdManager } from "../systemd/mod.ts";
import type { UpdateContext } from "./context.ts";
import type { Plan } from "./plan.ts";
import { undoableSteps } from "./prepare_steps.ts";
import { closeRecord, refreshMetrics, saveRecord } from "./record.ts";
import { type UndoOutcome, undoSteps } from "./steps.ts";

/** Runs phase "cancel" (best effort); returns the problem, if any. */
export async function runCancelPhase(
  context: UpdateContext,
  manager: SystemdManager,
  plan: Plan,
): Promise<string | undefined> {
  const phase = plan.phases.find((p) => p.phase === "cancel");
  if (!phase) return undefined;
  try {
    await runPhase({ manager, log: context.log, clock: context.clock }, phase);
    context.log.event("phase-done", 'Phase "cancel" done.', { phase: "cancel" });
    return undefined;
  } catch (error) {
    context.log.error(`Phase "cancel" failed: ${describeError(error)}`, { phase: "cancel" });
    return describeError(error);
  }
}

/** How a rollback ended. */
export interface RollbackOutcome {
  /** "rolling-back": something could not be undone; the attempt stays open for `recover`. */
  status: "rolled-back" | "cancelled" | "failed" | "rolling-back";
  exitCode: ExitCode;
  message: string;
}

/** What the record's `notes.rollback` holds. */
export interface RollbackNotes {
  /** Steps undone so far, newest first (across runs of the rollback). */
  undone: string[];
  /** Steps whose undo failed in the last run, with the reason. */
  failures: { step: string; error: string }[];
  /** Why phase "cancel" failed, if it did. */
  cancel_phase?: string;
  /** The status the attempt ends in once the rollback is complete. */
  final: "rolled-back" | "cancelled" | "failed";
  /** Set while something is not undone: the attempt stays open for `recover`. */
  incomplete?: true;
}

/** The status a rollback of `record` ends in: as its first run decided, else `fallback`. */
export function rollbackFinal(
  record: AttemptRecord,
  fallback: RollbackNotes["final"],
): RollbackNotes["final"] {
  const final = (record.notes.rollback as Partial<RollbackNotes> | undefined)?.final;
  return final === "rolled-back" || final === "cancelled" || final === "failed" ? final : fallback;
}

/**
 * Finishes a rollback whose undo has run (`undo`), or runs the undo first when
 * `undo` is not given. `why` says what made the update fail; `final` chooses the
 * status of a complete rollback ("rolled-back", "failed" when the update itself
 * failed after the kexec was issued, or "cancelled" for an operator's cancel).
 * Closes the record — unless something could not be undone: then the record stays
 * open ("rolling-back", `notes.rollback.incomplete`), so that `recover` retries
 * exactly what is left.
 */
export async function completeRollback(
  context: UpdateContext,
  record: AttemptRecord,
  plan: Plan,
  kernel: Kernel,
  manager: SystemdManager,
  why: string,
  undo?: UndoOutcome,
  final: RollbackNotes["final"] = "rolled-back",
): Promise<RollbackOutcome> {
  const previous = record.notes.rollback as Partial<RollbackNotes> | undefined;
  record.status = "rolling-back";
  record.notes.rollback = {
    ...(previous ?? {}),
    undone: previous?.undone ?? [],
    failures: previous?.failures ?? [],
    final,
  };
  if (!undo) {
    await saveRecord(context, record).catch(() => {});
    undo = await undoSteps(record, undoableSteps(context, plan, kernel, manager), {
      save: (r) => saveRecord(context, r),
      now: () => context.clock.now(),
      ...(context.onJournal ? { onJournal: context.onJournal } : {}),
    });
  }
  const undone = [...(previous?.undone ?? []), ...undo.undone];
  // Phase "cancel" brings workloads back; when no step had begun to act (stopped
  // before the first, or its snapshot failed), nothing was touched and it is skipped.
  const acted = record.steps.some((entry) =>
    entry.status !== "undone" || undone.includes(entry.name)
  );
  const cancelProblem = acted ? await runCancelPhase(context, manager, plan) : undefined;
  const notes: RollbackNotes = {
    undone,
    failures: undo.failures.map((f) => ({ step: f.step, error: describeError(f.error) })),
    ...(cancelProblem ? { cancel_phase: cancelProblem } : {}),
    final,
  };
  record.notes.rollback = notes;
  if (undo.failures.length > 0) {
    notes.incomplete = true;
    const left = undo.failures.map((f) => `${f.step} (${describeError(f.error)})`).join("; ");
    let message = `${why} Rolling back is not complete: ${left}. The attempt stays open; fix ` +
      "the cause and run 'liveupdate-agent recover', which retries only what is not undone yet.";
    context.log.event("rollback-incomplete", message, { attempt: record.id });
    try {
      await saveRecord(context, record);
    } catch (error) {
      message += ` The record could not be saved either (${describeError(error)}).`;
      context.log.error(`Could not save attempt ${record.id}: ${describeError(error)}`);
    }
    await refreshMetrics(context);
    return { status: "rolling-back", exitCode: ExitCode.Failed, message };
  }
  let outcome: RollbackOutcome;
  if (final === "cancelled") {
    outcome = {
      status: "cancelled",
      exitCode: ExitCode.Success,
      message: `${why} Everything the update changed was undone` +
        (cancelProblem ? `, but phase "cancel" failed: ${cancelProblem}` : "") + ".",
    };
    context.log.event("update-cancelled", outcome.message, { attempt: record.id });
  } else {
    outcome = {
      status: final,
      exitCode: final === "failed" ? ExitCode.Failed : ExitCode.RolledBack,
      message: `${why} Everything the update changed was rolled back` +
        (cancelProblem ? `, but phase "cancel" failed: ${cancelProblem}` : "") + ".",
    };
    context.log.event("rolled-back", outcome.message, { attempt: record.id });
  }
  const saved = await closeRecord(
    context,
    record,
    outcome.status as AttemptStatus,
    outcome.message,
    outcome.exitCode,
  );
  if (!saved) {
    outcome.message += " The record could not be saved (see above): it still says the attempt " +
      "is open, so run 'liveupdate-agent recover' once the state directory is writable again.";
  }
  return outcome;
}

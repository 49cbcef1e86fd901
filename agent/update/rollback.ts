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
import { closeRecord, saveRecord } from "./record.ts";
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
  status: AttemptStatus;
  exitCode: ExitCode;
  message: string;
}

/**
 * Finishes a rollback whose undo has run (`undo`), or runs the undo first when
 * `undo` is not given. `why` says what made the update fail; `final` chooses the
 * status of a complete rollback ("rolled-back", or "cancelled" for an operator's
 * cancel). Closes the record.
 */
export async function completeRollback(
  context: UpdateContext,
  record: AttemptRecord,
  plan: Plan,
  kernel: Kernel,
  manager: SystemdManager,
  why: string,
  undo?: UndoOutcome,
  final: "rolled-back" | "cancelled" | "failed" = "rolled-back",
): Promise<RollbackOutcome> {
  if (!undo) {
    record.status = "rolling-back";
    await saveRecord(context, record).catch(() => {});
    undo = await undoSteps(record, undoableSteps(context, plan, kernel, manager), {
      save: (r) => saveRecord(context, r),
      now: () => context.clock.now(),
      ...(context.onJournal ? { onJournal: context.onJournal } : {}),
    });
  }
  const cancelProblem = await runCancelPhase(context, manager, plan);
  record.notes.rollback = {
    undone: undo.undone,
    failures: undo.failures.map((f) => ({ step: f.step, error: describeError(f.error) })),
    ...(cancelProblem ? { cancel_phase: cancelProblem } : {}),
  };
  if (undo.failures.length > 0) {
    const left = undo.failures.map((f) => `${f.step} (${describeError(f.error)})`).join("; ");
    const message = `${why} Rolling back failed for: ${left}. Fix the cause and run ` +
      "'liveupdate-agent recover', which retries only what is not undone yet.";
    context.log.event("rollback-incomplete", message, { attempt: record.id });
    await closeRecord(context, record, "failed", message, ExitCode.Failed);
    return { status: "failed", exitCode: ExitCode.Failed, message };
  }
  if (final === "cancelled") {
    const message = `${why} Everything the update changed was undone.`;
    context.log.event("update-cancelled", message, { attempt: record.id });
    await closeRecord(context, record, "cancelled", message, ExitCode.Success);
    return { status: "cancelled", exitCode: ExitCode.Success, message };
  }
  if (final === "failed") {
    const message = `${why} Everything that could be undone was undone.`;
    context.log.event("rolled-back", message, { attempt: record.id });
    await closeRecord(context, record, "failed", message, ExitCode.Failed);
    return { status: "failed", exitCode: ExitCode.Failed, message };
  }
  const message = `${why} Everything the update changed was rolled back` +
    (cancelProblem ? `, but phase "cancel" failed: ${cancelProblem}` : "") + ".";
  context.log.event("rolled-back", message, { attempt: record.id });
  await closeRecord(context, record, "rolled-back", message, ExitCode.RolledBack);
  return { status: "rolled-back", exitCode: ExitCode.RolledBack, message };
}

/**
 * Creating, saving and closing attempt records, and what follows every save of an
 * outcome (the metrics file).
 *
 * @module
 */

import { describeError } from "../errors.ts";
import type { ExitCode } from "../exit_codes.ts";
import { refreshMetricsFile } from "../metrics/mod.ts";
import {
  ATTEMPT_SCHEMA,
  type AttemptRecord,
  type AttemptStatus,
  newAttemptId,
} from "../store/mod.ts";
import type { UpdateContext } from "./context.ts";
import { settleSlotOnClose } from "./fleet_slot.ts";
import type { Plan } from "./plan.ts";

/** A new record for `plan`, status "preparing". */
export function newRecord(context: UpdateContext, plan: Plan, overrides: string[]): AttemptRecord {
  const now = context.clock.now().toISOString();
  return {
    schema: ATTEMPT_SCHEMA,
    id: newAttemptId(context.clock.now()),
    agent_version: context.agentVersion,
    backend: plan.backend,
    status: "preparing",
    created: now,
    updated: now,
    kernels: {
      running: {
        release: plan.running.release,
        cmdline: plan.running.cmdline,
        luo_version: plan.running.luoVersion,
        ...(plan.running.compatible !== undefined ? { compatible: plan.running.compatible } : {}),
      },
      target: {
        release: plan.target.release,
        image: plan.target.kernel,
        ...(plan.target.initrd ? { initrd: plan.target.initrd } : {}),
        cmdline: plan.target.cmdline,
        luo_version: plan.target.luoVersion,
        ...(plan.target.compatible !== undefined ? { compatible: plan.target.compatible } : {}),
      },
    },
    compat: {
      verdict: plan.compat.verdict,
      reason: plan.compat.sentence,
      override: plan.compat.override,
    },
    plan: plan as unknown as Record<string, unknown>,
    steps: [],
    timings: { started: now },
    overrides,
    notes: {},
  };
}

/** Saves the record (creating the state directory first). */
export async function saveRecord(context: UpdateContext, record: AttemptRecord): Promise<void> {
  await context.store.save(record, context.clock.now());
}

/** Rewrites the metrics file from the records; a failure only warns. */
export async function refreshMetrics(context: UpdateContext, kernelState?: string): Promise<void> {
  try {
    await refreshMetricsFile({
      fs: context.fs,
      config: context.config,
      store: context.store,
      ...(kernelState ? { kernelState } : {}),
      now: context.clock.now(),
    });
  } catch (error) {
    context.log.warning(`Could not write the metrics file: ${describeError(error)}`);
  }
}

/**
 * Ends the attempt: status, outcome and end time, saved; old records pruned; the
 * metrics refreshed. A failure to save is logged (the outcome is reported anyway);
 * returns whether the record was saved.
 */
export async function closeRecord(
  context: UpdateContext,
  record: AttemptRecord,
  result: AttemptStatus,
  message: string,
  exitCode: ExitCode,
): Promise<boolean> {
  // The fleet slot: abandoned, kept or released by the result (fleet_slot.ts).
  await settleSlotOnClose(context, record, result, message);
  const at = context.clock.now().toISOString();
  record.status = result;
  record.outcome = { result, message, exit_code: exitCode, at };
  record.timings.ended = at;
  let saved = false;
  try {
    await saveRecord(context, record);
    saved = true;
    await context.store.prune();
  } catch (error) {
    context.log.error(
      `Could not save the outcome of attempt ${record.id} (${result}): ${describeError(error)}`,
    );
  }
  await refreshMetrics(context);
  return saved;
}

/** What `notes.failure` says: the step that failed and why. */
export interface FailureNote {
  /** The step ("prepare-kernel", "kexec", …). */
  step: string;
  error: string;
  /** The kernel's errno, when the kernel refused. */
  errno?: string;
  /** The agent stopped during the step (killed, power lost) rather than the step failing. */
  interrupted?: true;
}

/** Records in `notes.failure` which step failed and why (the first failure wins). */
export function noteFailure(
  record: AttemptRecord,
  step: string,
  error: unknown,
  options: { interrupted?: boolean } = {},
): FailureNote {
  const existing = record.notes.failure as FailureNote | undefined;
  if (existing?.step) return existing;
  const errno = (error as { errno?: unknown } | undefined)?.errno;
  const note: FailureNote = {
    step,
    error: describeError(error),
    ...(typeof errno === "string" ? { errno } : {}),
    ...(options.interrupted ? { interrupted: true as const } : {}),
  };
  record.notes.failure = note;
  return note;
}

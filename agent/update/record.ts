/**
 * Creating, saving and closing attempt records, and what follows every save of an
 * outcome (the metrics file).
 *
 * @module
 */

import { describeError } from "../errors.ts";
import type { ExitCode } from "../exit_codes.ts";
import { writeMetricsFile } from "../metrics/mod.ts";
import {
  ATTEMPT_SCHEMA,
  type AttemptRecord,
  type AttemptStatus,
  newAttemptId,
} from "../store/mod.ts";
import type { UpdateContext } from "./context.ts";
import { fleetStateForMetrics, settleSlotOnClose } from "./fleet_slot.ts";
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
      },
      target: {
        release: plan.target.release,
        image: plan.target.kernel,
        ...(plan.target.initrd ? { initrd: plan.target.initrd } : {}),
        cmdline: plan.target.cmdline,
        luo_version: plan.target.luoVersion,
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
  if (context.config.metrics.file === "") return;
  try {
    const { records } = await context.store.list();
    await writeMetricsFile(context.fs, context.config.metrics.file, {
      records,
      ...(kernelState ? { kernelState } : {}),
      fleet: await fleetStateForMetrics(context),
      now: context.clock.now(),
    });
  } catch (error) {
    context.log.warning(`Could not write the metrics file: ${describeError(error)}`);
  }
}

/**
 * Ends the attempt: status, outcome and end time, saved; old records pruned; the
 * metrics refreshed. A failure to save is logged (the outcome is reported anyway).
 */
export async function closeRecord(
  context: UpdateContext,
  record: AttemptRecord,
  result: AttemptStatus,
  message: string,
  exitCode: ExitCode,
): Promise<void> {
  // The fleet slot: abandoned, kept or released by the result (fleet_slot.ts).
  await settleSlotOnClose(context, record, result, message);
  const at = context.clock.now().toISOString();
  record.status = result;
  record.outcome = { result, message, exit_code: exitCode, at };
  record.timings.ended = at;
  try {
    await saveRecord(context, record);
    await context.store.prune();
  } catch (error) {
    context.log.error(
      `Could not save the outcome of attempt ${record.id} (${result}): ${describeError(error)}`,
    );
  }
  await refreshMetrics(context);
}

/**
 * Running an update as ordered steps, each with an undo, journaled in the attempt
 * record before and after every step: before a step acts, the record holds what
 * its undo needs; after, what it changed. A failure undoes the steps taken so far
 * in reverse order; `recover` uses the same journal after a crash.
 *
 * @module
 */

import type { AttemptRecord, StepEntry } from "../store/mod.ts";

/** One step of a flow. `S` is what undo needs; `R` what the step reports. */
export interface Step<S = unknown, R = unknown> {
  readonly name: string;
  /**
   * Reads what undo will need, before the step changes anything (units' states,
   * devices' `requested` values, …). Journaled with the step's "started" entry.
   */
  snapshot?(): Promise<S>;
  /** Acts. Returns what it changed or found (journaled when done). */
  run(snapshot: S): Promise<R>;
  /**
   * Puts back what `run` changed. Must be idempotent and must work from the
   * snapshot alone (`result` is undefined when the step was interrupted), since
   * `recover` may call it after a crash in the middle of `run`.
   */
  undo?(snapshot: S, result: R | undefined): Promise<void>;
}

/** Persists the record; called before and after every step. */
export type SaveRecord = (record: AttemptRecord) => Promise<void>;

/** Called right after each journal write (tests use it to crash at a chosen point). */
export type JournalHook = (step: string, status: StepEntry["status"]) => void | Promise<void>;

/** The outcome of a run of steps. */
export type StepsOutcome =
  | { ok: true }
  | { ok: false; failed: string; error: unknown; undo: UndoOutcome };

/** The outcome of undoing steps. */
export interface UndoOutcome {
  /** Steps undone, in the order they were undone. */
  undone: string[];
  /** Steps whose undo failed, with the reason. */
  failures: { step: string; error: unknown }[];
}

/** Options of {@link runSteps} and {@link undoSteps}. */
export interface RunOptions {
  save: SaveRecord;
  now: () => Date;
  onJournal?: JournalHook;
  /** Checked before every step: once aborted, no further step starts and the run is undone. */
  signal?: AbortSignal;
  /**
   * Called when a step failed (or the run was aborted), before the failure is
   * journaled and the undo starts: the record can say why before anything else.
   */
  onFailure?: (step: string, error: unknown) => void;
}

/**
 * An error a step throws after changing part of what it meant to: `partialResult`
 * is journaled as the step's result, so its undo reverses exactly that part.
 */
export interface PartialFailure {
  partialResult: unknown;
}

function partialResultOf(error: unknown): unknown {
  return typeof error === "object" && error !== null && "partialResult" in error
    ? (error as PartialFailure).partialResult
    : undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function journal(
  record: AttemptRecord,
  entry: StepEntry,
  status: StepEntry["status"],
  options: RunOptions,
): Promise<void> {
  entry.status = status;
  if (status !== "started") entry.ended = options.now().toISOString();
  await options.save(record);
  await options.onJournal?.(entry.name, status);
}

/**
 * Runs `steps` in order, journaling each. On the first failure, undoes every step
 * begun so far in reverse and returns what failed and what the undo achieved. A
 * failure to save the journal itself counts as a step failure.
 */
export async function runSteps(
  record: AttemptRecord,
  steps: readonly Step[],
  options: RunOptions,
): Promise<StepsOutcome> {
  const byName = new Map(steps.map((step) => [step.name, step]));
  for (const step of steps) {
    if (options.signal?.aborted) {
      options.onFailure?.(step.name, options.signal.reason);
      await options.save(record).catch(() => {});
      const undo = await undoSteps(record, byName, options);
      return { ok: false, failed: step.name, error: options.signal.reason, undo };
    }
    const entry: StepEntry = {
      name: step.name,
      status: "started",
      started: options.now().toISOString(),
    };
    try {
      entry.undo = step.snapshot ? await step.snapshot() : null;
    } catch (error) {
      // The step never acted: there is nothing to undo for it.
      entry.error = `Reading the state before the step failed: ${describe(error)}`;
      options.onFailure?.(step.name, error);
      record.steps.push(entry);
      await journal(record, entry, "undone", options).catch(() => {});
      const undo = await undoSteps(record, byName, options);
      return { ok: false, failed: step.name, error, undo };
    }
    try {
      record.steps.push(entry);
      await journal(record, entry, "started", options);
      entry.result = (await step.run(entry.undo)) ?? null;
      await journal(record, entry, "done", options);
    } catch (error) {
      entry.error = describe(error);
      const partial = partialResultOf(error);
      if (partial !== undefined) entry.result = partial;
      options.onFailure?.(step.name, error);
      try {
        await journal(record, entry, "failed", options);
      } catch {
        // The journal cannot be written (disk full?): undo anyway, from memory.
      }
      const undo = await undoSteps(record, byName, options);
      return { ok: false, failed: step.name, error, undo };
    }
  }
  return { ok: true };
}

/**
 * Undoes, in reverse order, every journaled step that began and is not undone yet.
 * Continues past a failing undo (recording it) so as much as possible is put back.
 */
export async function undoSteps(
  record: AttemptRecord,
  steps: ReadonlyMap<string, Step>,
  options: RunOptions,
): Promise<UndoOutcome> {
  const outcome: UndoOutcome = { undone: [], failures: [] };
  for (const entry of [...record.steps].reverse()) {
    if (entry.status === "undone") continue;
    const step = steps.get(entry.name);
    if (!step) {
      outcome.failures.push({
        step: entry.name,
        error: new Error(`Step "${entry.name}" is not known to this agent version`),
      });
      continue;
    }
    if (!step.undo) {
      entry.status = "undone";
      continue;
    }
    // What the step reported (done), or the part it changed before failing; undefined
    // when it was interrupted (undo then works from the snapshot alone).
    const result = entry.result === null ? undefined : entry.result;
    try {
      await journal(record, entry, "undoing", options);
    } catch {
      // Keep undoing even if the journal cannot be written.
    }
    try {
      await step.undo(entry.undo, result);
      delete entry.undo_error;
      await journal(record, entry, "undone", options).catch(() => {});
      outcome.undone.push(entry.name);
    } catch (error) {
      entry.undo_error = describe(error);
      await journal(record, entry, "undo-failed", options).catch(() => {});
      outcome.failures.push({ step: entry.name, error });
    }
  }
  return outcome;
}

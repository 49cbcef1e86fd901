/**
 * Update phases as systemd jobs. A phase is the configured `phases.<phase>.stop` and
 * `.start` lists plus the phase target `liveupdate-<phase>.target`, which services
 * hook into with `WantedBy=` (to run in the phase) or `Conflicts=`/`PartOf=`.
 *
 * A phase runs in two waves, each submitted at once (pipelined): first every stop
 * job, then every start job together with the phase target. Every job systemd runs
 * for them (also jobs its transactions add) is followed to its result, within the
 * phase's timeout. The result is what the phase changed — units it stopped that were
 * active, units it started that were not — which {@link undoChanges} reverses. When a
 * phase fails, the thrown {@link PhaseError} carries the same list for what did
 * change, so the update flow can undo a half-done phase too.
 *
 * Before anything is submitted, every unit is checked (LoadState, ActiveState): a
 * unit that does not exist refuses the phase with {@link UnitPreflightError} (exit
 * code 5), not a failure half-way through.
 *
 * @module
 */

import type { Clock } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import { type Config, type Phase, PHASES } from "../config/schema.ts";
import {
  type JobFailure,
  PhaseAbortedError,
  type PhaseChanges,
  PhaseDisconnectedError,
  PhaseFailedError,
  PhaseTimeoutError,
  type PreflightProblem,
  UnitPreflightError,
} from "./systemd_error.ts";
import {
  isActive,
  type JobRecord,
  type JobRequest,
  type JobsRun,
  type SystemdManager,
  type UnitStatus,
} from "./manager.ts";

/** The target of a phase ("liveupdate-prepare.target"). */
export function phaseTarget(phase: Phase): string {
  return `liveupdate-${phase}.target`;
}

const PHASE_TARGETS = new Set(PHASES.map(phaseTarget));

/** What one phase does. */
export interface PhasePlan {
  phase: Phase;
  /** Units to stop (first wave). */
  stop: readonly string[];
  /** Units to start (second wave), besides the phase target. */
  start: readonly string[];
  /** The phase target, started in the second wave. */
  target: string;
  /** How long both waves together may take. */
  timeoutMs: number;
}

/** The plan of `phase` from the configuration (`phases.<phase>.{stop,start,timeout}`). */
export function planPhase(config: Config, phase: Phase): PhasePlan {
  const section = config.phases[phase];
  return {
    phase,
    stop: section.stop,
    start: section.start,
    target: phaseTarget(phase),
    timeoutMs: section.timeout,
  };
}

/** What a finished phase did. */
export interface PhaseReport {
  phase: Phase | "undo";
  /** What changed; undo it with {@link undoChanges}. */
  changes: PhaseChanges;
  /** Every job systemd ran for the phase, with its result. */
  jobs: JobRecord[];
  /** Wall time of the phase, in milliseconds. */
  durationMs: number;
}

/** What the phase functions need. */
export interface PhaseContext {
  manager: SystemdManager;
  log: Logger;
  clock: Pick<Clock, "monotonic">;
  /**
   * Aborting (SIGTERM) stops the phase: no further wave is submitted, jobs not ended
   * yet are cancelled, and the phase throws {@link PhaseAbortedError}.
   */
  signal?: AbortSignal;
}

/** A unit's expected load state for a role in a plan. */
function problemFor(status: UnitStatus, role: "stop" | "start"): string | undefined {
  if (/@\./.test(status.name)) {
    return "is a template; name an instance instead (such as foo@1.service)";
  }
  switch (status.loadState) {
    case "loaded":
    case "merged":
      return undefined;
    case "not-found":
      return 'does not exist (LoadState "not-found")';
    case "masked":
      return role === "start" ? 'is masked (LoadState "masked")' : undefined;
    default:
      return role === "start"
        ? `cannot be loaded (LoadState "${status.loadState}"); see systemd-analyze verify`
        : undefined;
  }
}

/**
 * Preflight of one or more plans, without side effects: every unit (and every phase
 * target) must exist, units to start must be loadable and not masked, and no unit
 * may be both stopped and started in one phase. Returns the units' current states;
 * throws {@link UnitPreflightError} (exit code 5) listing every problem.
 */
export async function checkPhases(
  manager: SystemdManager,
  plans: readonly PhasePlan[],
): Promise<Map<string, UnitStatus>> {
  const names = [...new Set(plans.flatMap((p) => [...p.stop, ...p.start, p.target]))];
  const statuses = new Map((await manager.unitStatuses(names)).map((s) => [s.name, s]));
  const problems: PreflightProblem[] = [];
  for (const plan of plans) {
    const check = (unit: string, source: string, role: "stop" | "start") => {
      const status = statuses.get(unit);
      const reason = status
        ? problemFor(status, role)
        : "was not reported by systemd (ListUnitsByNames)";
      if (reason) problems.push({ unit, source, reason });
    };
    for (const unit of plan.stop) {
      check(unit, `phases.${plan.phase}.stop`, "stop");
      if (plan.start.includes(unit)) {
        problems.push({
          unit,
          source: `phases.${plan.phase}.stop`,
          reason: `is also in phases.${plan.phase}.start; a phase either stops or starts a unit`,
        });
      }
    }
    for (const unit of plan.start) check(unit, `phases.${plan.phase}.start`, "start");
    const target = statuses.get(plan.target);
    if (!target || target.loadState !== "loaded") {
      problems.push({
        unit: plan.target,
        source: `the phase target of "${plan.phase}"`,
        reason: `is not loadable (LoadState "${target?.loadState ?? "unknown"}"); the agent's ` +
          "units are not installed correctly",
      });
    }
  }
  if (problems.length > 0) throw new UnitPreflightError(problems);
  return statuses;
}

/** Results that count as "the job did what was asked". */
function succeeded(record: JobRecord): boolean {
  return record.result === "done" || record.result === "skipped";
}

/**
 * Net changes of a set of jobs: units stopped that were active before, units started
 * that were not. A job that did not finish "done" counts by the unit's state after
 * (a cancelled start may have left it running). Units whose state is unknown (the
 * bus went away) are returned as uncertain. Phase targets other than `own` are
 * markers, not services, and are left out (undoing a conflict-stopped phase target
 * would re-run its hooks).
 */
export function changesOf(
  records: readonly JobRecord[],
  before: ReadonlyMap<string, UnitStatus>,
  after: ReadonlyMap<string, UnitStatus> | undefined,
  own: ReadonlySet<string>,
): { changes: PhaseChanges; uncertain: string[] } {
  // Whether each unit was active before the first job and after the last one, in
  // job order (a later wave sees the state the earlier one left).
  const initial = new Map<string, boolean>();
  const current = new Map<string, boolean>();
  const uncertain = new Set<string>();
  for (const record of records) {
    if (record.type !== "start" && record.type !== "stop") continue;
    if (PHASE_TARGETS.has(record.unit) && !own.has(record.unit)) continue;
    const prior = before.get(record.unit);
    // A job the transaction added exists only because the unit was not yet in the
    // wanted state, so its state before is the opposite of the job.
    const wasActive = current.get(record.unit) ??
      (prior ? isActive(prior.activeState) : record.type === "stop");
    if (!initial.has(record.unit)) initial.set(record.unit, wasActive);
    current.set(record.unit, wasActive);
    const wanted = record.type === "start" ? !wasActive : wasActive;
    if (!wanted) continue;
    let changed: boolean | undefined;
    if (record.result === "done") changed = true;
    else if (record.result === "refused") changed = false;
    else {
      const now = after?.get(record.unit);
      if (now) {
        changed = record.type === "start" ? isActive(now.activeState) : !isActive(now.activeState);
      }
    }
    if (changed === undefined) uncertain.add(record.unit);
    else if (changed) current.set(record.unit, record.type === "start");
  }
  const stopped: string[] = [];
  const started: string[] = [];
  for (const [unit, wasActive] of initial) {
    if (uncertain.has(unit)) continue;
    const isNow = current.get(unit)!;
    if (wasActive && !isNow) stopped.push(unit);
    if (!wasActive && isNow) started.push(unit);
  }
  return { changes: { stopped, started }, uncertain: [...uncertain] };
}

function failuresOf(records: readonly JobRecord[]): JobFailure[] {
  const failures: JobFailure[] = [];
  for (const record of records) {
    if (record.result === undefined || succeeded(record) || record.timedOut) continue;
    const failure: JobFailure = { unit: record.unit, type: record.type, result: record.result };
    if (record.dbusName) failure.dbusName = record.dbusName;
    if (record.text) failure.text = record.text;
    failures.push(failure);
  }
  return failures;
}

/** Adds each failed service's own result (why it failed) to its failure. */
async function explainFailures(
  manager: SystemdManager,
  failures: JobFailure[],
  after: ReadonlyMap<string, UnitStatus>,
): Promise<void> {
  await Promise.all(failures.map(async (failure) => {
    const status = after.get(failure.unit);
    if (!status || failure.result === "refused") return;
    try {
      const result = await manager.serviceResult(status);
      if (result && result !== "success") failure.unitResult = result;
    } catch {
      // diagnostics only
    }
  }));
}

/** Runs waves of jobs one after the other within one time budget. */
async function runWaves(
  context: PhaseContext,
  phase: Phase | "undo",
  waves: readonly JobRequest[][],
  before: ReadonlyMap<string, UnitStatus>,
  own: ReadonlySet<string>,
  timeoutMs: number,
): Promise<PhaseReport> {
  const { manager, clock } = context;
  const started = clock.monotonic();
  const records: JobRecord[] = [];
  let last: JobsRun | undefined;
  for (const wave of waves) {
    if (wave.length === 0) continue;
    const remaining = timeoutMs - (clock.monotonic() - started);
    const stopped = context.signal?.aborted ? "aborted" : remaining > 0 ? undefined : "timeout";
    // No time left for this wave, or the phase was aborted: it is pending as a whole,
    // nothing is submitted.
    last = stopped === undefined
      ? await manager.runJobs(wave, {
        timeoutMs: remaining,
        ...(context.signal ? { signal: context.signal } : {}),
      })
      : {
        records: wave.map((r) => ({ unit: r.unit, type: r.type, anchor: true, timedOut: true })),
        ended: stopped,
      };
    records.push(...last.records);
    if (last.ended !== "complete" || failuresOf(last.records).length > 0) break;
  }
  const durationMs = clock.monotonic() - started;
  const failures = failuresOf(records);
  const unsettled = records.filter((r) => !succeeded(r));
  let after: Map<string, UnitStatus> | undefined;
  if (unsettled.length > 0 && manager.connected) {
    try {
      const names = [...new Set(unsettled.map((r) => r.unit))];
      after = new Map((await manager.unitStatuses(names)).map((s) => [s.name, s]));
    } catch {
      after = undefined; // the bus went away just now: those units stay uncertain
    }
  }
  const { changes, uncertain } = changesOf(records, before, after, own);
  if (after && failures.length > 0) await explainFailures(manager, failures, after);
  const report: PhaseReport = { phase, changes, jobs: records, durationMs };
  if (last?.ended === "disconnected" || (uncertain.length > 0 && !manager.connected)) {
    throw new PhaseDisconnectedError({
      phase,
      changes,
      failures,
      uncertain: [
        ...new Set([...uncertain, ...records.filter((r) => !r.result).map((r) => r.unit)]),
      ],
      cause: last?.disconnect,
    });
  }
  if (last?.ended === "aborted") {
    throw new PhaseAbortedError({
      phase,
      changes,
      failures,
      uncertain,
      pending: [...new Set(records.filter((r) => r.timedOut || !r.result).map((r) => r.unit))],
    });
  }
  if (last?.ended === "timeout") {
    throw new PhaseTimeoutError({
      phase,
      changes,
      failures,
      uncertain,
      pending: [...new Set(records.filter((r) => r.timedOut || !r.result).map((r) => r.unit))],
      timeoutMs,
    });
  }
  if (failures.length > 0) throw new PhaseFailedError({ phase, changes, failures, uncertain });
  return report;
}

/**
 * Runs one phase: preflight (nothing changes if a unit is missing), then the stop
 * wave, then the start wave with the phase target. Resolves with what changed;
 * throws {@link UnitPreflightError} before any change, or a {@link PhaseError}
 * (failed, timed out, disconnected) that carries what changed anyway.
 */
export async function runPhase(context: PhaseContext, plan: PhasePlan): Promise<PhaseReport> {
  const log = context.log.with({ phase: plan.phase });
  const before = await checkPhases(context.manager, [plan]);
  log.info(
    `Phase "${plan.phase}": stopping ${plan.stop.length} unit(s), then starting ` +
      `${plan.start.length} unit(s) and ${plan.target}.`,
  );
  const waves: JobRequest[][] = [
    plan.stop.map((unit) => ({ unit, type: "stop" })),
    [...plan.start, plan.target].map((unit) => ({ unit, type: "start" })),
  ];
  const report = await runWaves(
    context,
    plan.phase,
    waves,
    before,
    new Set([plan.target]),
    plan.timeoutMs,
  );
  log.info(
    `Phase "${plan.phase}" done in ${Math.round(report.durationMs)} ms: stopped ` +
      `${report.changes.stopped.length}, started ${report.changes.started.length} unit(s).`,
  );
  return report;
}

/**
 * Reverses what a phase changed: stops what it started, then starts what it
 * stopped (each wave at once). Resolves with what the undo changed; throws a
 * {@link PhaseError} with phase "undo" when something could not be undone.
 */
export async function undoChanges(
  context: PhaseContext,
  changes: PhaseChanges,
  timeoutMs: number,
): Promise<PhaseReport> {
  const names = [...new Set([...changes.started, ...changes.stopped])];
  if (names.length === 0) {
    return { phase: "undo", changes: { stopped: [], started: [] }, jobs: [], durationMs: 0 };
  }
  context.log.info(
    `Undoing a phase: stopping ${changes.started.length} unit(s), then starting ` +
      `${changes.stopped.length} unit(s).`,
  );
  const before = new Map(
    (await context.manager.unitStatuses(names)).map((s) => [s.name, s]),
  );
  const waves: JobRequest[][] = [
    [...changes.started].reverse().map((unit) => ({ unit, type: "stop" })),
    [...changes.stopped].reverse().map((unit) => ({ unit, type: "start" })),
  ];
  return await runWaves(context, "undo", waves, before, new Set(names), timeoutMs);
}

/**
 * The record of one live-update attempt: what was planned, every step taken (the
 * journal `recover` reads after a crash), and how it ended. Written atomically to
 * `<state_dir>/attempts/<id>.json` before and after every step.
 *
 * @module
 */

import { PHASES } from "../config/schema.ts";

/** Version of the record format. */
export const ATTEMPT_SCHEMA = 1;

/** Where an attempt stands. Terminal: succeeded, failed, rolled-back, refused, cancelled. */
export type AttemptStatus =
  | "preparing"
  | "prepared"
  | "kexec-issued"
  | "finishing"
  | "rolling-back"
  | "succeeded"
  | "failed"
  | "rolled-back"
  | "refused"
  | "cancelled";

/** The statuses after which nothing more happens to an attempt. */
export const TERMINAL_STATUSES: ReadonlySet<AttemptStatus> = new Set([
  "succeeded",
  "failed",
  "rolled-back",
  "refused",
  "cancelled",
]);

/** One journaled step. */
export interface StepEntry {
  name: string;
  status: "started" | "done" | "failed" | "undoing" | "undone" | "undo-failed";
  started: string;
  ended?: string;
  /** What the step's undo needs (recorded before the step acts). */
  undo?: unknown;
  /** What the step changed or found (recorded when it is done). */
  result?: unknown;
  /** Why the step failed (kept after its undo, so the journal still says). */
  error?: string;
  /** Why undoing the step failed, while it is not undone. */
  undo_error?: string;
}

/** A kernel as the record knows it. */
export interface KernelRecord {
  release: string | null;
  image?: string;
  initrd?: string;
  cmdline?: string;
  /** "major.minor", or null when unknown. */
  luo_version: string | null;
  /** Where the version came from (metadata file, config override, KHO tree). */
  luo_version_source?: string;
  /** Mainline kernels: the handover compatible strings (`kho`, `luo`, `fileHandlers`). */
  compatible?: { kho: string | null; luo: string | null; fileHandlers: string[] } | null;
}

/** The record of one attempt. */
export interface AttemptRecord {
  schema: typeof ATTEMPT_SCHEMA;
  id: string;
  agent_version: string;
  backend: string;
  status: AttemptStatus;
  created: string;
  updated: string;
  kernels: { running: KernelRecord; target: KernelRecord };
  compat: { verdict: string; reason: string; override: boolean };
  /** The plan preflight approved (devices, phases, options). */
  plan: Record<string, unknown>;
  steps: StepEntry[];
  /** Wall-clock milestones (ISO times) and durations (ms). */
  timings: Record<string, string | number>;
  /** Explicit operator overrides, each a sentence. */
  overrides: string[];
  outcome?: { result: AttemptStatus; message: string; exit_code: number; at: string };
  /** Anything else a layer records (fleet decisions, finish verification, …). */
  notes: Record<string, unknown>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const STATUSES: ReadonlySet<string> = new Set([
  "preparing",
  "prepared",
  "kexec-issued",
  "finishing",
  "rolling-back",
  ...TERMINAL_STATUSES,
]);

const isStrings = (value: unknown) =>
  Array.isArray(value) && value.every((item) => typeof item === "string");

/**
 * What is wrong with a recorded plan, for the parts the recovery flows act on (the
 * phases' units, the devices, the target), or undefined. A record is input like
 * any other: a plan missing them must be set aside, not crash a rollback.
 */
function checkPlan(plan: Record<string, unknown>): string | undefined {
  if (!Array.isArray(plan.phases)) return 'has no "phases" list';
  for (const name of PHASES) {
    if (!plan.phases.some((phase) => isObject(phase) && phase.phase === name)) {
      return `has no phase "${name}"`;
    }
  }
  for (const [index, phase] of plan.phases.entries()) {
    if (
      !isObject(phase) || typeof phase.phase !== "string" || !isStrings(phase.stop) ||
      !isStrings(phase.start) || typeof phase.target !== "string" ||
      typeof phase.timeoutMs !== "number"
    ) {
      return `has a phase ${index + 1} that is not { phase, stop, start, target, timeoutMs }`;
    }
  }
  const devices = plan.devices;
  if (
    !isObject(devices) || typeof devices.supported !== "boolean" ||
    !Array.isArray(devices.selected) || !isStrings(devices.ancestors) ||
    !Array.isArray(devices.changes)
  ) {
    return 'has no "devices" { supported, selected, ancestors, changes }';
  }
  for (const device of devices.selected) {
    if (!isObject(device) || typeof device.path !== "string" || typeof device.id !== "string") {
      return "lists a selected device that is not { path, id }";
    }
  }
  for (const change of devices.changes) {
    if (
      !isObject(change) || typeof change.path !== "string" || typeof change.from !== "boolean" ||
      typeof change.to !== "boolean"
    ) {
      return "lists a device change that is not { path, from, to }";
    }
  }
  const target = plan.target;
  if (
    !isObject(target) || typeof target.kernel !== "string" || typeof target.cmdline !== "string"
  ) {
    return 'has no "target" { kernel, cmdline }';
  }
  return undefined;
}

/**
 * Checks that parsed JSON is an attempt record this agent can act on. Returns the
 * record, or the first problem as a phrase ("field \"steps\" is not a list").
 */
export function checkAttempt(value: unknown): { ok: true; record: AttemptRecord } | {
  ok: false;
  problem: string;
} {
  if (!isObject(value)) return { ok: false, problem: "it is not a JSON object" };
  if (value.schema !== ATTEMPT_SCHEMA) {
    return {
      ok: false,
      problem: `its schema is ${JSON.stringify(value.schema)}, not ${ATTEMPT_SCHEMA}`,
    };
  }
  const strings = ["id", "agent_version", "backend", "created", "updated"];
  for (const key of strings) {
    if (typeof value[key] !== "string") {
      return { ok: false, problem: `field "${key}" is not a string` };
    }
  }
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(value.id as string)) {
    return { ok: false, problem: `field "id" is ${JSON.stringify(value.id)}, not an attempt id` };
  }
  if (typeof value.status !== "string" || !STATUSES.has(value.status)) {
    return {
      ok: false,
      problem: `field "status" is ${JSON.stringify(value.status)}, not a known status`,
    };
  }
  const kernels = value.kernels;
  if (!isObject(kernels) || !isObject(kernels.running) || !isObject(kernels.target)) {
    return { ok: false, problem: 'field "kernels" lacks "running" or "target"' };
  }
  const compat = value.compat;
  if (
    !isObject(compat) || typeof compat.verdict !== "string" || typeof compat.reason !== "string"
  ) {
    return { ok: false, problem: 'field "compat" lacks "verdict" or "reason"' };
  }
  if (!isObject(value.plan)) return { ok: false, problem: 'field "plan" is not an object' };
  // The plan of an attempt that has not ended is acted on (rollback, finish, cancel).
  const planProblem = TERMINAL_STATUSES.has(value.status as AttemptStatus)
    ? undefined
    : checkPlan(value.plan);
  if (planProblem) return { ok: false, problem: `field "plan" ${planProblem}` };
  if (!isObject(value.timings)) return { ok: false, problem: 'field "timings" is not an object' };
  if (!isObject(value.notes)) return { ok: false, problem: 'field "notes" is not an object' };
  if (!Array.isArray(value.overrides) || !value.overrides.every((o) => typeof o === "string")) {
    return { ok: false, problem: 'field "overrides" is not a list of strings' };
  }
  if (!Array.isArray(value.steps)) return { ok: false, problem: 'field "steps" is not a list' };
  const stepStatuses = new Set(["started", "done", "failed", "undoing", "undone", "undo-failed"]);
  for (const [index, step] of value.steps.entries()) {
    if (!isObject(step) || typeof step.name !== "string" || typeof step.started !== "string") {
      return { ok: false, problem: `step ${index + 1} lacks "name" or "started"` };
    }
    if (typeof step.status !== "string" || !stepStatuses.has(step.status)) {
      return { ok: false, problem: `step ${index + 1} ("${step.name}") has an unknown status` };
    }
  }
  if (value.outcome !== undefined) {
    const outcome = value.outcome;
    if (
      !isObject(outcome) || typeof outcome.result !== "string" ||
      typeof outcome.message !== "string"
    ) {
      return { ok: false, problem: 'field "outcome" lacks "result" or "message"' };
    }
  }
  return { ok: true, record: value as unknown as AttemptRecord };
}

/**
 * A new attempt id: sortable by time to the millisecond (two attempts within one
 * second must still sort in order: the newest record is the open one), unique
 * ("20261125T200000.123Z-3fa9c1").
 */
export function newAttemptId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, "");
  return `${stamp}-${crypto.randomUUID().slice(0, 6)}`;
}

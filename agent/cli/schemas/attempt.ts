/**
 * The schema of an attempt record (`<state_dir>/attempts/<id>.json`), which
 * `history ID --json`, `prepare --json`, `demo --json` and the `attempt` of
 * finish/recover/cancel's JSON print; and of the plan it holds, which `check
 * --json` prints too.
 *
 * @module
 */

import {
  array,
  ATTEMPT_STATUSES,
  attemptId,
  boolean,
  described,
  handoverAbi,
  integer,
  isoTime,
  type JsonSchema,
  map,
  nullable,
  nullableString,
  object,
  oneOfValues,
  string,
} from "./_common.ts";

/** The plan preflight approved (agent/update/plan.ts). */
export const plan: JsonSchema = object({
  backend: string,
  target: object({
    kernel: string,
    initrd: nullableString,
    cmdline: string,
    release: nullableString,
    luoVersion: nullableString,
    compatible: described("Mainline kernels: handover compatible strings.", nullable(handoverAbi)),
  }, { optional: ["compatible"] }),
  running: object({
    release: nullableString,
    luoVersion: nullableString,
    cmdline: string,
    compatible: described("Mainline kernels: handover compatible strings.", nullable(handoverAbi)),
  }, { optional: ["compatible"] }),
  compat: object({ verdict: string, sentence: string, allowed: boolean, override: boolean }),
  devices: object({
    supported: described("Whether this kernel preserves devices at all.", boolean),
    selected: array(object({ path: string, id: string, unit: string }, { optional: ["unit"] })),
    ancestors: described("Preserved with the selected devices.", array(string)),
    changes: described(
      "The `requested` flags the agent changes.",
      array(object({ path: string, from: boolean, to: boolean })),
    ),
  }),
  phases: array(object({
    phase: oneOfValues(["prepare", "reboot", "updated", "finish", "cancel"]),
    stop: array(string),
    start: array(string),
    target: string,
    timeoutMs: integer,
  })),
  kexecArgs: array(string),
  kexecWasLoaded: nullable(boolean),
  stopAtPrepared: boolean,
  issue: oneOfValues(["systemd", "command"]),
  mainline: described(
    "Mainline kernels: the sessions' side of the update, recorded before the kexec.",
    object({
      device: string,
      bootId: nullableString,
      liveupdateNumber: nullable(integer),
      socket: string,
      subscribers: array(string),
      devices: string,
    }),
  ),
}, { optional: ["mainline"] });

const kernel: JsonSchema = object(
  {
    release: nullableString,
    image: string,
    initrd: string,
    cmdline: string,
    luo_version: described('"MAJOR.MINOR", or null when unknown.', nullableString),
    luo_version_source: string,
    compatible: described("Mainline kernels: handover compatible strings.", nullable(handoverAbi)),
  },
  { optional: ["image", "initrd", "cmdline", "luo_version_source", "compatible"] },
);

/** One attempt's record (agent/store/attempt.ts). */
export const attempt: JsonSchema = object({
  schema: described("The record format's version.", { const: 1 }),
  id: attemptId,
  agent_version: string,
  backend: string,
  status: oneOfValues(ATTEMPT_STATUSES),
  created: isoTime,
  updated: isoTime,
  kernels: object({ running: kernel, target: kernel }),
  compat: object({ verdict: string, reason: string, override: boolean }),
  plan: { $ref: "#/$defs/plan" },
  steps: described(
    "The journal: every step, written before it acts and after.",
    array(object(
      {
        name: string,
        status: oneOfValues(["started", "done", "failed", "undoing", "undone", "undo-failed"]),
        started: isoTime,
        ended: isoTime,
        undo: described("What the step's undo needs (any JSON).", {}),
        result: described("What the step changed or found (any JSON).", {}),
        error: described("Why the step failed (kept after its undo).", string),
        undo_error: described("Why undoing the step failed, while it is not undone.", string),
      },
      { optional: ["ended", "undo", "result", "error", "undo_error"] },
    )),
  ),
  timings: described(
    "Milestones (ISO times) and durations (*_ms, milliseconds).",
    map({ type: ["string", "number"] }),
  ),
  overrides: array(string),
  outcome: object({
    result: oneOfValues(ATTEMPT_STATUSES),
    message: string,
    exit_code: integer,
    at: isoTime,
  }),
  notes: described(
    "What layers record besides (devices, rollback, fleet decisions, verification, …).",
    { type: "object" },
  ),
}, { optional: ["outcome"] });

/** The `$defs` a schema embedding records and plans carries. */
export const ATTEMPT_DEFS = { attempt, plan };

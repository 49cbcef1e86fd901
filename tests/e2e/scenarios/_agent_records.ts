/**
 * Host-side checks of what the agent recorded in the guest (its attempt record,
 * `history --json`, `status --json`), shared by the agent scenarios.
 *
 * @module
 */

import type { ScenarioResult, Timing } from "../scenario.ts";

/** A JSON object, or a thrown error naming `what`. */
export function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${what} is not an object: ${JSON.stringify(value)?.slice(0, 300)}`);
  }
  return value as Record<string, unknown>;
}

/** `actual` equals `expected`, or a thrown error naming `what`. */
export function expectEqual(what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) {
    throw new Error(`${what} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  }
}

/** The newest attempt record the guest recorded (value "record") on boot `boot`. */
export function attemptRecord(result: ScenarioResult, boot: number): Record<string, unknown> {
  return object(result.json(boot, "record"), "The attempt record");
}

/**
 * Checks that `history --json` (value "history" on boot `boot`) lists exactly
 * one attempt, the recorded one, with `status`; returns that history entry.
 */
export function expectHistory(
  result: ScenarioResult,
  boot: number,
  status: string,
): Record<string, unknown> {
  const history = object(result.json(boot, "history"), "history --json");
  const attempts = history.attempts;
  if (!Array.isArray(attempts) || attempts.length !== 1) {
    throw new Error(`history --json lists ${JSON.stringify(attempts)}, not one attempt`);
  }
  const entry = object(attempts[0], "history --json attempts[0]");
  const record = attemptRecord(result, boot);
  expectEqual("history --json attempts[0].id", entry.id, record.id);
  expectEqual("history --json attempts[0].status", entry.status, status);
  expectEqual("the attempt record's status", record.status, status);
  expectEqual("history --json attempts[0].ended", entry.ended, true);
  return entry;
}

/** A duration in ms from the record's `timings`, in seconds, or a thrown error. */
export function recordSeconds(record: Record<string, unknown>, key: string): number {
  const timings = object(record.timings, "The attempt record's timings");
  const value = timings[key];
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new Error(`The attempt record's timings.${key} is ${JSON.stringify(value)}`);
  }
  return value / 1000;
}

/** The agent's own timings of a live update, from its record (boot `boot`). */
export function agentTimings(result: ScenarioResult, boot: number): Timing[] {
  const record = attemptRecord(result, boot);
  return [
    {
      name: "agent: preflight (record timings.preflight_ms)",
      seconds: recordSeconds(record, "preflight_ms"),
    },
    {
      name: "agent: steps before the kexec (record timings.prepare_ms)",
      seconds: recordSeconds(record, "prepare_ms"),
    },
    {
      name: "agent: blackout, kexec issued to the new kernel booted (timings.blackout_ms)",
      seconds: recordSeconds(record, "blackout_ms"),
    },
    {
      name: "agent: kexec issued to finished (record timings.kexec_to_finish_ms)",
      seconds: recordSeconds(record, "kexec_to_finish_ms"),
    },
  ];
}

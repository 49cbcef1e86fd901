/**
 * Errors of the device selection.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { DevicePath } from "../kernel/kernel.ts";

/** One problem with one device or udev database entry, phrased for an operator. */
export interface DeviceProblem {
  /** The udev id, when the problem belongs to one. */
  id?: string;
  /** The device, when known. */
  path?: DevicePath;
  /** A full sentence: what is wrong, where, and what to do. */
  message: string;
}

function summary(first: string, count: number): string {
  return count > 1 ? `${first} (and ${count - 1} more problem${count > 2 ? "s" : ""})` : first;
}

/**
 * The udev database or sysfs gave a selection the agent cannot apply (malformed
 * data, unknown ids, vanished devices, links leading elsewhere). Nothing was
 * written. Carries every problem found.
 */
export class SelectionError extends AgentError {
  override name = "SelectionError";
  readonly problems: readonly DeviceProblem[];

  constructor(problems: readonly DeviceProblem[]) {
    super(
      summary(
        problems[0]?.message ?? "The device selection is unusable.",
        problems.length,
      ),
      { exitCode: ExitCode.Failed },
    );
    this.problems = problems;
  }
}

/** What kind of refusal: the kernel's reason as far as the agent can tell. */
export type RefusalKind =
  | "unsupported" // EINVAL on requesting: no live-update support on the way
  | "vanished" // ENOENT: the device is gone
  | "state" // the kernel is not (or no longer) in state normal
  | "interrupted" // EAGAIN, every attempt
  | "mismatch" // the flag read back differs from what was written
  | "other"; // any other error

/** Why the kernel refused to change one device's `requested` flag. */
export interface Refusal extends DeviceProblem {
  path: DevicePath;
  kind: RefusalKind;
  /** The errno name ("EINVAL", "ENOENT", "EAGAIN"…), or undefined for a failed verification. */
  errno?: string;
  /** What the agent tried to write. */
  requested: boolean;
  /** For EINVAL: devices on the path that may lack live-update support, nearest first. */
  suspects?: readonly Suspect[];
}

/** A device that may be the reason for an EINVAL, with what sysfs tells about it. */
export interface Suspect {
  path: DevicePath;
  driver?: string;
  bus?: string;
  /** Whether the same driver and bus work for another device here (so it is less likely). */
  pairWorksElsewhere: boolean;
}

/**
 * The kernel refused part of a reconcile. Everything the agent had changed in this
 * run was restored (see `restored`), so the host is as before. Carries every refusal.
 */
export class DeviceRefusedError extends AgentError {
  override name = "DeviceRefusedError";
  readonly refusals: readonly Refusal[];
  /** Whether every change of the run was undone. */
  readonly restored: boolean;

  constructor(refusals: readonly Refusal[], restored: boolean, options: { cause?: unknown } = {}) {
    const first = refusals[0]?.message ?? "The kernel refused a device change.";
    const tail = restored
      ? " Nothing was left changed."
      : " Restoring the earlier values failed too; run `liveupdate-agent devices` to see the state.";
    super(summary(first, refusals.length) + tail, { ...options, exitCode: ExitCode.Failed });
    this.refusals = refusals;
    this.restored = restored;
  }
}

/** The kernel is not in `normal` state, so `requested` cannot change. */
export class DeviceStateError extends AgentError {
  override name = "DeviceStateError";
  readonly state: string;

  constructor(message: string, state: string) {
    super(message, { exitCode: ExitCode.Failed });
    this.state = state;
  }
}

/** The record of devices the agent requested could not be read or written. */
export class OwnershipRecordError extends AgentError {
  override name = "OwnershipRecordError";
  readonly file: string;

  constructor(message: string, file: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.Failed });
    this.file = file;
  }
}

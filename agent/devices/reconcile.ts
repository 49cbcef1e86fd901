/**
 * Applying a selection to the kernel's per-device `requested` flags.
 *
 * - Writes `1` where a device is selected and not requested.
 * - Writes `0` only where the agent itself requested the device earlier (its
 *   {@link OwnershipStore} record) and the device is no longer selected; a request
 *   someone else made is left alone and reported as a conflict, unless
 *   `clearForeign` is set.
 * - Reads every written flag back to verify it.
 *
 * Nothing is half-applied: the selection must be free of errors before anything
 * is written; the kernel state must be `normal` when anything is to change; and if
 * the kernel refuses any write (or a read-back differs), every change of the run
 * is undone and a {@link DeviceRefusedError} explains each refusal. A successful
 * run returns the changes and the record as it was, so the update flow can undo
 * the run later ({@link undoReconcile}) — for example when a later step fails.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import { KernelError } from "../kernel/kernel_error.ts";
import type { DeviceFlags, DeviceKernel, DevicePath, LuoState } from "../kernel/kernel.ts";
import type { Logger } from "../log/mod.ts";
import { forEachLimited, IN_FLIGHT } from "./_pool.ts";
import { DeviceRefusedError, DeviceStateError, type Refusal } from "./devices_error.ts";
import {
  type Evidence,
  explainInterrupted,
  explainState,
  explainUnsupported,
  explainVanished,
  pairKey,
  suspectsFor,
} from "./explain.ts";
import type { Owned, OwnedDevice, OwnershipStore } from "./ownership.ts";
import { assertUsable, type SelectedDevice, type Selection } from "./selection.ts";
import type { DeviceIdentity } from "./sysfs_resolver.ts";

/** One change of a device's `requested` flag. */
export interface DeviceChange {
  path: DevicePath;
  id?: string;
  /** The value before the change. */
  from: boolean;
  /** The value written. */
  to: boolean;
  /** Why: selected now, no longer selected (the agent's own request), or foreign and cleared. */
  reason: "selected" | "deselected" | "foreign";
}

/** Everything needed to undo a reconcile, as plain JSON-friendly data. */
export interface DeviceUndo {
  /** The changes, in the order they were made. */
  changes: DeviceChange[];
  /** The ownership record before the run. */
  ownedBefore: { path: DevicePath; id: string; unit?: string }[];
}

/** A device someone else requested that the selection does not choose. */
export interface ForeignRequest {
  path: DevicePath;
  id?: string;
  /** Whether this run cleared it (`clearForeign`). */
  cleared: boolean;
}

/** What a reconcile did (or, for a dry run, would do). */
export interface ReconcileResult {
  /** The kernel state seen before anything was written. */
  state: LuoState;
  /** Whether nothing was written (dry run). */
  dryRun: boolean;
  /** Selected devices the kernel already had requested (nothing written). */
  alreadyRequested: DevicePath[];
  /** Selected devices this run requested. */
  requested: DevicePath[];
  /** Devices this run cleared (the agent's own, no longer selected; or foreign ones). */
  cleared: DevicePath[];
  /** Requests someone else made on devices not selected (conflicts). */
  foreign: ForeignRequest[];
  /** Devices the record listed that are gone or no longer requested: dropped from it. */
  forgotten: DevicePath[];
  /** The undo information for this run (empty changes for a dry run or no-op). */
  undo: DeviceUndo;
  /** The record after the run. */
  ownedAfter: Owned;
}

/** Options of {@link reconcileDevices}. */
export interface ReconcileOptions {
  kernel: DeviceKernel;
  selection: Selection;
  /** The record of devices the agent requested. */
  store: OwnershipStore;
  /** Also clear requests the agent did not make on devices not selected (`devices.clear_foreign`). */
  clearForeign?: boolean;
  /**
   * More devices to check for requests the agent did not make, beyond the tagged
   * ones the selection passed over: for example every device ({@link listDevices}),
   * which a complete `clearForeign` needs.
   */
  others?: readonly DevicePath[];
  /** Tells a device's driver and bus, for EINVAL explanations (`SysfsResolver.identity`). */
  identify?: (path: DevicePath) => DeviceIdentity;
  /** Plan only: read everything, write nothing (not even the record). */
  dryRun?: boolean;
  /** How often to try a write the kernel answers with EAGAIN (default 3). */
  attempts?: number;
  log?: Logger;
}

interface Planned {
  path: DevicePath;
  id?: string;
  to: boolean;
  reason: DeviceChange["reason"];
}

function ownedList(owned: Owned): DeviceUndo["ownedBefore"] {
  return [...owned].map(([path, device]) => ({ path, ...device }));
}

function errnoOf(error: unknown): string | undefined {
  return error instanceof KernelError ? error.errno : undefined;
}

/**
 * Reconciles the kernel's `requested` flags with `selection` (see the module
 * documentation). Throws {@link SelectionError} for an unusable selection,
 * {@link DeviceStateError} when a change is needed outside state normal,
 * {@link DeviceRefusedError} when the kernel refuses (after undoing the run), and
 * {@link OwnershipRecordError} when the record cannot be read or written.
 */
export async function reconcileDevices(options: ReconcileOptions): Promise<ReconcileResult> {
  const { kernel, selection, store } = options;
  const dryRun = options.dryRun ?? false;
  assertUsable(selection);
  const owned = await store.load();
  const state = await kernel.state();

  // 1. Read what the kernel has now.
  const selected = new Map<DevicePath, SelectedDevice>();
  for (const device of selection.devices) selected.set(device.path, device);
  const flags = new Map<DevicePath, DeviceFlags>();
  const gone = new Set<DevicePath>();
  const refusals: Refusal[] = [];
  await forEachLimited(selection.devices, IN_FLIGHT, async (device) => {
    try {
      flags.set(device.path, await kernel.readDevice(device.path));
    } catch (error) {
      refusals.push(readRefusal(error, device.path, device.id));
    }
  });
  const others = new Map<DevicePath, string | undefined>();
  for (const [path, device] of owned) if (!selected.has(path)) others.set(path, device.id);
  for (const over of selection.passedOver) {
    if (over.path !== undefined && !selected.has(over.path)) others.set(over.path, over.id);
  }
  for (const path of options.others ?? []) {
    if (!selected.has(path) && !others.has(path)) others.set(path, undefined);
  }
  await forEachLimited([...others.keys()], IN_FLIGHT, async (path) => {
    try {
      flags.set(path, await kernel.readDevice(path));
    } catch (error) {
      if (errnoOf(error) === "ENOENT") gone.add(path);
      else refusals.push(readRefusal(error, path, others.get(path)));
    }
  });
  if (refusals.length > 0) throw new DeviceRefusedError(refusals, true);

  // 2. Plan.
  const plan: Planned[] = [];
  const alreadyRequested: DevicePath[] = [];
  for (const device of selection.devices) {
    if (flags.get(device.path)!.requested) alreadyRequested.push(device.path);
    else plan.push({ path: device.path, id: device.id, to: true, reason: "selected" });
  }
  const foreign: ForeignRequest[] = [];
  const forgotten: DevicePath[] = [];
  for (const [path, id] of others) {
    const requested = flags.get(path)?.requested ?? false;
    if (owned.has(path)) {
      if (requested) plan.push({ path, ...(id ? { id } : {}), to: false, reason: "deselected" });
      else forgotten.push(path);
    } else if (requested) {
      const clear = options.clearForeign ?? false;
      foreign.push({ path, ...(id ? { id } : {}), cleared: clear });
      if (clear) plan.push({ path, ...(id ? { id } : {}), to: false, reason: "foreign" });
    }
  }
  for (const path of gone) if (owned.has(path)) forgotten.push(path);

  const ownedAfter = new Map(owned);
  for (const path of forgotten) ownedAfter.delete(path);
  for (const step of plan) {
    if (step.to) {
      const device = selected.get(step.path)!;
      ownedAfter.set(step.path, { id: device.id, ...(device.unit ? { unit: device.unit } : {}) });
    }
  }
  const result: ReconcileResult = {
    state,
    dryRun,
    alreadyRequested,
    requested: plan.filter((step) => step.to).map((step) => step.path),
    cleared: plan.filter((step) => !step.to).map((step) => step.path),
    foreign,
    forgotten,
    undo: { changes: [], ownedBefore: ownedList(owned) },
    ownedAfter,
  };
  // Units may change between runs: keep the record's unit current for devices still selected.
  for (const path of alreadyRequested) {
    const device = selected.get(path)!;
    const known = ownedAfter.get(path);
    if (known && (known.unit !== device.unit || known.id !== device.id)) {
      ownedAfter.set(path, { id: device.id, ...(device.unit ? { unit: device.unit } : {}) });
    }
  }
  if (dryRun) return result;
  if (plan.length === 0) {
    if (!sameOwned(owned, ownedAfter)) await store.save(ownedAfter);
    return result;
  }
  if (state !== "normal") throw new DeviceStateError(explainState(state), state);

  // 3. Record first (the record may list more than the kernel has, never less), then write.
  const intent = new Map(ownedAfter);
  for (const step of plan) {
    if (!step.to && owned.has(step.path)) intent.set(step.path, owned.get(step.path)!);
  }
  await store.save(intent);
  const changes: DeviceChange[] = [];
  let stopped = false;
  await forEachLimited(plan, IN_FLIGHT, async (step) => {
    if (stopped) return;
    const outcome = await write(kernel, step.path, step.to, options.attempts ?? 3);
    if (outcome === "ok") {
      changes.push({
        path: step.path,
        ...(step.id ? { id: step.id } : {}),
        from: !step.to,
        to: step.to,
        reason: step.reason,
      });
      return;
    }
    if (outcome.errno === "EINVAL") {
      const now = await kernel.state().catch(() => state);
      if (now !== "normal") {
        stopped = true;
        refusals.push({
          path: step.path,
          ...(step.id ? { id: step.id } : {}),
          kind: "state",
          errno: "EINVAL",
          requested: step.to,
          message: explainState(now, step.path),
        });
        return;
      }
    }
    refusals.push(writeRefusal(outcome.error, outcome.errno, step, options.attempts ?? 3));
  });

  // 4. Verify.
  if (refusals.length === 0) {
    await forEachLimited(changes, IN_FLIGHT, async (change) => {
      try {
        const now = await kernel.readDevice(change.path);
        if (now.requested !== change.to) {
          refusals.push({
            path: change.path,
            ...(change.id ? { id: change.id } : {}),
            kind: "mismatch",
            requested: change.to,
            message: `After writing ${change.to ? 1 : 0} to the requested flag of ` +
              `"${change.path}" the kernel reads back ${now.requested ? 1 : 0}; another ` +
              "process may be changing it. Nothing was left changed; retry.",
          });
        }
      } catch (error) {
        refusals.push(readRefusal(error, change.path, change.id));
      }
    });
  }

  if (refusals.length > 0) {
    explainRefusals(refusals, selection, flags, changes, options.identify);
    options.log?.warning("The kernel refused device changes; undoing this run's changes.", {
      refused: refusals.length,
      changed: changes.length,
    });
    let restored = true;
    try {
      await undoReconcile({ kernel, store, undo: { changes, ownedBefore: ownedList(owned) } });
    } catch (error) {
      restored = false;
      options.log?.error(`Undoing the device changes failed: ${(error as Error).message}`);
    }
    throw new DeviceRefusedError(refusals, restored);
  }
  await store.save(ownedAfter);
  result.undo = { changes, ownedBefore: ownedList(owned) };
  options.log?.info("Device requests reconciled.", {
    requested: result.requested.length,
    cleared: result.cleared.length,
    already: alreadyRequested.length,
  });
  return result;
}

function sameOwned(a: Owned, b: Owned): boolean {
  if (a.size !== b.size) return false;
  for (const [path, device] of a) {
    const other = b.get(path);
    if (!other || other.id !== device.id || other.unit !== device.unit) return false;
  }
  return true;
}

type WriteOutcome = "ok" | { errno: string | undefined; error: unknown };

/** Writes one flag, retrying EAGAIN; any failure (even an unexpected one) is returned, not thrown. */
async function write(
  kernel: DeviceKernel,
  path: DevicePath,
  value: boolean,
  attempts: number,
): Promise<WriteOutcome> {
  for (let attempt = 1;; attempt++) {
    try {
      await kernel.setRequested(path, value);
      return "ok";
    } catch (error) {
      const errno = errnoOf(error);
      if (errno === "EAGAIN" && attempt < attempts) continue;
      return { errno, error };
    }
  }
}

function readRefusal(error: unknown, path: DevicePath, id: string | undefined): Refusal {
  const errno = errnoOf(error);
  const base = { path, ...(id ? { id } : {}), requested: false };
  if (errno === "ENOENT") {
    return { ...base, kind: "vanished", errno, message: explainVanished(path, id) };
  }
  return {
    ...base,
    kind: "other",
    ...(errno ? { errno } : {}),
    message: `Cannot read the live-update flags of "${path}": ${describeError(error)}`,
  };
}

function writeRefusal(
  error: unknown,
  errno: string | undefined,
  step: Planned,
  attempts: number,
): Refusal {
  const base = {
    path: step.path,
    ...(step.id ? { id: step.id } : {}),
    ...(errno ? { errno } : {}),
    requested: step.to,
  };
  if (errno === "ENOENT") {
    return { ...base, kind: "vanished", message: explainVanished(step.path, step.id) };
  }
  if (errno === "EAGAIN") {
    return { ...base, kind: "interrupted", message: explainInterrupted(step.path, attempts) };
  }
  // EINVAL on writing 1 in state normal: explained once every write is done (it needs
  // the evidence of which devices the kernel accepted).
  return {
    ...base,
    kind: errno === "EINVAL" && step.to ? "unsupported" : "other",
    message: `The kernel refused to set the requested flag of "${step.path}" to ` +
      `${step.to ? 1 : 0}: ${describeError(error)}`,
  };
}

/** Adds the EINVAL explanations, now that the run shows which devices the kernel accepted. */
function explainRefusals(
  refusals: Refusal[],
  selection: Selection,
  flags: ReadonlyMap<DevicePath, DeviceFlags>,
  changes: readonly DeviceChange[],
  identify: ((path: DevicePath) => DeviceIdentity) | undefined,
): void {
  const unsupported = refusals.filter((refusal) => refusal.kind === "unsupported");
  if (unsupported.length === 0) return;
  const byPath = new Map(selection.devices.map((device) => [device.path, device]));
  const knownGood = new Set<DevicePath>();
  const accepted = [
    ...changes.filter((change) => change.to).map((change) => change.path),
    ...[...flags].filter(([, value]) => value.requested).map(([path]) => path),
  ];
  for (const path of accepted) {
    knownGood.add(path);
    for (const ancestor of byPath.get(path)?.ancestors ?? []) knownGood.add(ancestor);
  }
  const goodPairs = new Set<string>();
  if (identify) {
    // A bounded sample: every known-good ancestor and up to 256 accepted devices.
    const sample = [
      ...new Set(accepted.flatMap((path) => byPath.get(path)?.ancestors ?? [])),
      ...accepted.slice(0, 256),
    ];
    for (const path of sample) goodPairs.add(pairKey(identify(path)));
  }
  const evidence: Evidence = { knownGood, goodPairs };
  const memo = new Map<DevicePath, DeviceIdentity>();
  const cached = identify
    ? (path: DevicePath) => {
      let identity = memo.get(path);
      if (!identity) memo.set(path, identity = identify(path));
      return identity;
    }
    : undefined;
  for (const refusal of unsupported) {
    const device = byPath.get(refusal.path);
    const suspects = suspectsFor(refusal.path, device?.ancestors ?? [], evidence, cached);
    refusal.suspects = suspects;
    refusal.message = explainUnsupported(refusal.path, refusal.id, suspects);
  }
}

/** Options of {@link undoReconcile}. */
export interface UndoOptions {
  kernel: DeviceKernel;
  store: OwnershipStore;
  undo: DeviceUndo;
  attempts?: number;
}

/**
 * Restores every flag a reconcile changed to its earlier value (newest change
 * first), verifies each, and puts the ownership record back as it was. A device
 * that has vanished since needs nothing restored. Throws
 * {@link DeviceRefusedError} (restored = false) naming every device it could not
 * restore; needs state normal when anything has to change.
 */
export async function undoReconcile(options: UndoOptions): Promise<void> {
  const { kernel, store, undo } = options;
  const failures: Refusal[] = [];
  for (const change of [...undo.changes].reverse()) {
    const outcome = await write(kernel, change.path, change.from, options.attempts ?? 3);
    if (outcome !== "ok" && outcome.errno === "ENOENT") continue;
    if (outcome !== "ok") {
      const state = await kernel.state().catch(() => "unknown");
      failures.push({
        path: change.path,
        ...(change.id ? { id: change.id } : {}),
        kind: state !== "normal" ? "state" : outcome.errno === "EAGAIN" ? "interrupted" : "other",
        ...(outcome.errno ? { errno: outcome.errno } : {}),
        requested: change.from,
        message: `Cannot restore the requested flag of "${change.path}" to ` +
          `${change.from ? 1 : 0}: ` +
          (state !== "normal" ? explainState(state) : describeError(outcome.error)),
      });
      continue;
    }
    try {
      const now = await kernel.readDevice(change.path);
      if (now.requested !== change.from) {
        failures.push({
          path: change.path,
          kind: "mismatch",
          requested: change.from,
          message: `After restoring the requested flag of "${change.path}" to ` +
            `${change.from ? 1 : 0} the kernel reads back ${now.requested ? 1 : 0}.`,
        });
      }
    } catch (error) {
      if (errnoOf(error) !== "ENOENT") {
        failures.push({
          path: change.path,
          kind: "other",
          requested: change.from,
          message: `Cannot verify the restored flag of "${change.path}": ${describeError(error)}`,
        });
      }
    }
  }
  if (failures.length > 0) throw new DeviceRefusedError(failures, false);
  const before = new Map<DevicePath, OwnedDevice>();
  for (const entry of undo.ownedBefore) {
    before.set(entry.path, { id: entry.id, ...(entry.unit ? { unit: entry.unit } : {}) });
  }
  await store.save(before);
}

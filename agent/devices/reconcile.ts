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
import type { DeviceKernel, DevicePath, HeldRequested, LuoState } from "../kernel/kernel.ts";
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
import { assertUsable, type Selection } from "./selection.ts";
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
  /** Where the device is in the list its flag was read with (for files held open). */
  index: number;
}

function ownedList(owned: Owned): DeviceUndo["ownedBefore"] {
  const list: DeviceUndo["ownedBefore"] = [];
  owned.forEach(({ id, unit }, path) => list.push(unit ? { path, id, unit } : { path, id }));
  return list;
}

function errnoOf(error: unknown): string | undefined {
  return error instanceof KernelError ? error.errno : undefined;
}

/** The indexes of the entries of `items` that `test` accepts. */
function indexesWhere<T>(items: readonly T[], test: (item: T) => boolean): number[] {
  const indexes: number[] = [];
  for (let index = 0; index < items.length; index++) if (test(items[index]!)) indexes.push(index);
  return indexes;
}

/** `requested` of each device, as {@link readRequested} read them. */
interface Read {
  /** The flag, or what reading it threw. */
  flags: (boolean | unknown)[];
  /** Files kept open for writing the value they were read for (see DeviceKernel.holdRequestedMany). */
  held?: HeldRequested;
}

/**
 * `requested` of each device: the flag, or what reading it threw. With `writing`,
 * the kernel may keep the files of devices whose flag is not `writing` open, for
 * the write that may follow (the caller closes them).
 */
async function readRequested(
  kernel: DeviceKernel,
  paths: readonly DevicePath[],
  writing?: boolean,
): Promise<Read> {
  if (paths.length === 0) return { flags: [] };
  let held: HeldRequested | undefined;
  let flags: (boolean | unknown)[];
  if (writing !== undefined && kernel.holdRequestedMany) {
    held = await kernel.holdRequestedMany(paths, writing);
    flags = [...held.flags];
  } else {
    flags = kernel.readRequestedMany
      ? await kernel.readRequestedMany(paths)
      : new Array(paths.length).fill(undefined);
  }
  // Devices the fast path did not answer (or failed: its errno can be unreliable under
  // FFI) are read one by one, which also gives the error its exact errno.
  const unanswered = indexesWhere(flags, (flag) => typeof flag !== "boolean");
  await forEachLimited(unanswered, IN_FLIGHT, async (index) => {
    try {
      flags[index] = (await kernel.readDevice(paths[index]!)).requested;
    } catch (error) {
      flags[index] = error ?? new Error("unknown failure");
    }
  });
  return held ? { flags, held } : { flags };
}

/** What {@link writeRequested} did for each device. */
interface Written {
  /** null, or what the write threw. */
  outcomes: (unknown | null)[];
  /** Whether the fast path already read the written flag back (no separate check needed). */
  verified: boolean[];
}

/**
 * Writes `value` to each device's `requested`: through the files `held` open for it
 * (the devices at `indexes` of the list they were read with) when there are any.
 */
async function writeRequested(
  kernel: DeviceKernel,
  paths: readonly DevicePath[],
  value: boolean,
  attempts: number,
  held?: { files: HeldRequested; indexes: readonly number[] },
): Promise<Written> {
  const outcomes: (unknown | null)[] = new Array(paths.length).fill(undefined);
  const verified: boolean[] = new Array(paths.length).fill(false);
  if (paths.length === 0) return { outcomes, verified };
  if (held || kernel.setRequestedMany) {
    try {
      // The fast path reads each flag back: a null entry is a verified write.
      const results = held
        ? await held.files.write(held.indexes)
        : await kernel.setRequestedMany!(paths, value);
      results.forEach((outcome, index) => {
        outcomes[index] = outcome;
        verified[index] = outcome === null;
      });
    } catch {
      // The fast path itself failed: write each device on its own below.
    }
  }
  // Devices not written yet, and failures of the fast path (their errno can be
  // unreliable under FFI), are written one by one; EAGAIN (an interrupted lock wait)
  // is retried, a bounded number of times. Writing a value again is harmless.
  const unwritten = indexesWhere(outcomes, (outcome) => outcome !== null);
  await forEachLimited(unwritten, IN_FLIGHT, async (index) => {
    const path = paths[index]!;
    for (let attempt = 1; outcomes[index] !== null && attempt <= attempts; attempt++) {
      if (attempt > 1 && errnoOf(outcomes[index]) !== "EAGAIN") return;
      try {
        await kernel.setRequested(path, value);
        outcomes[index] = null;
      } catch (error) {
        outcomes[index] = error ?? new Error("unknown failure");
      }
    }
  });
  return { outcomes, verified };
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

  // 1. Read what the kernel has now: selected devices, then every other device that matters.
  const { devices } = selection;
  const selected = new Set<DevicePath>();
  for (let index = 0; index < devices.length; index++) selected.add(devices[index]!.path);
  const others = new Map<DevicePath, string | undefined>();
  owned.forEach((device, path) => {
    if (!selected.has(path)) others.set(path, device.id);
  });
  for (const over of selection.passedOver) {
    if (over.path !== undefined && !selected.has(over.path)) others.set(over.path, over.id);
  }
  for (const path of options.others ?? []) {
    if (!selected.has(path) && !others.has(path)) others.set(path, undefined);
  }
  // Selected devices may be requested (1) and others cleared (0): the kernel may keep
  // the files it reads open for that write (closed in any case below).
  const selectedPaths: DevicePath[] = new Array(devices.length);
  for (let index = 0; index < devices.length; index++) selectedPaths[index] = devices[index]!.path;
  const otherPaths = [...others.keys()];
  const writing = !dryRun && state === "normal";
  const selectedRead = await readRequested(kernel, selectedPaths, writing ? true : undefined);
  let otherRead: Read | undefined;
  try {
    otherRead = await readRequested(kernel, otherPaths, writing ? false : undefined);
    return await reconcileRead(options, {
      owned,
      state,
      others,
      selectedRead,
      otherPaths,
      otherRead,
    });
  } finally {
    selectedRead.held?.close();
    otherRead?.held?.close();
  }
}

/** What {@link reconcileDevices} read before planning. */
interface Reading {
  owned: Owned;
  state: LuoState;
  /** Devices besides the selected ones that matter, with their ids. */
  others: Map<DevicePath, string | undefined>;
  selectedRead: Read;
  otherPaths: DevicePath[];
  otherRead: Read;
}

/** Plans, writes and verifies (see {@link reconcileDevices}). */
async function reconcileRead(
  options: ReconcileOptions,
  reading: Reading,
): Promise<ReconcileResult> {
  const { kernel, selection, store } = options;
  const dryRun = options.dryRun ?? false;
  const attempts = options.attempts ?? 3;
  const { owned, state, others, selectedRead, otherPaths, otherRead } = reading;
  const refusals: Refusal[] = [];
  const requestedNow = new Map<DevicePath, boolean>();
  const { devices } = selection;
  for (let index = 0; index < devices.length; index++) {
    const flag = selectedRead.flags[index];
    const device = devices[index]!;
    if (typeof flag === "boolean") requestedNow.set(device.path, flag);
    else refusals.push(readRefusal(flag, device.path, device.id));
  }
  const gone = new Set<DevicePath>();
  const otherIndex = new Map<DevicePath, number>();
  otherRead.flags.forEach((flag, index) => {
    const path = otherPaths[index]!;
    otherIndex.set(path, index);
    if (typeof flag === "boolean") requestedNow.set(path, flag);
    else if (errnoOf(flag) === "ENOENT") gone.add(path);
    else refusals.push(readRefusal(flag, path, others.get(path)));
  });
  if (refusals.length > 0) throw new DeviceRefusedError(refusals, true);

  // 2. Plan.
  const plan: Planned[] = [];
  const alreadyRequested: DevicePath[] = [];
  for (let index = 0; index < devices.length; index++) {
    const device = devices[index]!;
    if (requestedNow.get(device.path)) alreadyRequested.push(device.path);
    else plan.push({ path: device.path, id: device.id, to: true, reason: "selected", index });
  }
  const foreign: ForeignRequest[] = [];
  const forgotten: DevicePath[] = [];
  for (const [path, id] of others) {
    if (gone.has(path)) {
      if (owned.has(path)) forgotten.push(path);
      continue;
    }
    const requested = requestedNow.get(path) ?? false;
    const index = otherIndex.get(path)!;
    if (owned.has(path)) {
      if (requested) {
        plan.push({ path, ...(id ? { id } : {}), to: false, reason: "deselected", index });
      } else forgotten.push(path);
    } else if (requested) {
      const clear = options.clearForeign ?? false;
      foreign.push({ path, ...(id ? { id } : {}), cleared: clear });
      if (clear) plan.push({ path, ...(id ? { id } : {}), to: false, reason: "foreign", index });
    }
  }

  const ownedAfter = new Map(owned);
  for (const path of forgotten) ownedAfter.delete(path);
  for (const step of plan) {
    if (!step.to) ownedAfter.delete(step.path);
  }
  // Record the agent's own requests; refresh id and unit of devices it already owns. A
  // SelectedDevice is an OwnedDevice (id, unit) too: no copy per device.
  for (let index = 0; index < devices.length; index++) {
    const device = devices[index]!;
    const known = owned.get(device.path);
    if (
      known ? known.id === device.id && known.unit === device.unit : requestedNow.get(device.path)
    ) {
      continue;
    }
    ownedAfter.set(device.path, device);
  }
  const ownedBefore = ownedList(owned);
  const result: ReconcileResult = {
    state,
    dryRun,
    alreadyRequested,
    requested: plan.filter((step) => step.to).map((step) => step.path),
    cleared: plan.filter((step) => !step.to).map((step) => step.path),
    foreign,
    forgotten,
    undo: { changes: [], ownedBefore },
    ownedAfter,
  };
  if (dryRun) return result;
  if (plan.length === 0) {
    if (!sameOwned(owned, ownedAfter)) await store.save(ownedAfter);
    return result;
  }
  if (state !== "normal") throw new DeviceStateError(explainState(state), state);

  // 3. Record first (the record may list more than the kernel has, never less), then write.
  const intent = new Map(ownedAfter);
  for (const step of plan) {
    const before = owned.get(step.path);
    if (!step.to && before) intent.set(step.path, before);
  }
  await store.save(intent);
  const intentIsFinal = plan.every((step) => step.to || !owned.has(step.path));
  const changes: DeviceChange[] = [];
  /** Indexes of changes the fast path did not read back. */
  const unverified: number[] = [];
  for (const to of [true, false]) {
    const steps = plan.filter((step) => step.to === to);
    const files = (to ? selectedRead : otherRead).held;
    const { outcomes, verified } = await writeRequested(
      kernel,
      steps.map((step) => step.path),
      to,
      attempts,
      files ? { files, indexes: steps.map((step) => step.index) } : undefined,
    );
    let stateNow: LuoState | undefined;
    for (const [index, outcome] of outcomes.entries()) {
      const step = steps[index]!;
      if (outcome === null) {
        changes.push({
          path: step.path,
          ...(step.id ? { id: step.id } : {}),
          from: !to,
          to,
          reason: step.reason,
        });
        if (!verified[index]) unverified.push(changes.length - 1);
        continue;
      }
      if (errnoOf(outcome) === "EINVAL") {
        stateNow ??= await kernel.state().catch(() => state);
        if (stateNow !== "normal") {
          refusals.push({
            path: step.path,
            ...(step.id ? { id: step.id } : {}),
            kind: "state",
            errno: "EINVAL",
            requested: to,
            message: explainState(stateNow, step.path),
          });
          continue;
        }
      }
      refusals.push(writeRefusal(outcome, errnoOf(outcome), step, attempts));
    }
    if (refusals.length > 0) break;
  }

  // 4. Verify: read back every flag written.
  if (refusals.length === 0) {
    const toCheck = unverified.map((index) => changes[index]!);
    const readBack = await readRequested(kernel, toCheck.map((change) => change.path));
    readBack.flags.forEach((flag, index) => {
      const change = toCheck[index]!;
      if (typeof flag !== "boolean") {
        refusals.push(readRefusal(flag, change.path, change.id));
      } else if (flag !== change.to) {
        refusals.push({
          path: change.path,
          ...(change.id ? { id: change.id } : {}),
          kind: "mismatch",
          requested: change.to,
          message: `After writing ${change.to ? 1 : 0} to the requested flag of ` +
            `"${change.path}" the kernel reads back ${flag ? 1 : 0}; another process may be ` +
            "changing it. Retry.",
        });
      }
    });
  }

  if (refusals.length > 0) {
    explainRefusals(refusals, selection, requestedNow, changes, options.identify);
    options.log?.warning("The kernel refused device changes; undoing this run's changes.", {
      refused: refusals.length,
      changed: changes.length,
    });
    let restored = true;
    try {
      await undoReconcile({
        kernel,
        store,
        undo: { changes, ownedBefore },
        attempts,
      });
    } catch (error) {
      restored = false;
      options.log?.error(`Undoing the device changes failed: ${describeError(error)}`);
    }
    throw new DeviceRefusedError(refusals, restored);
  }
  // The record written before the writes is already final unless the run cleared devices.
  if (!intentIsFinal) await store.save(ownedAfter);
  result.undo = { changes, ownedBefore };
  options.log?.info("Device requests reconciled.", {
    requested: result.requested.length,
    cleared: result.cleared.length,
    already: alreadyRequested.length,
  });
  return result;
}

function sameOwned(a: Owned, b: Owned): boolean {
  if (a.size !== b.size) return false;
  let same = true;
  a.forEach((device, path) => {
    const other = b.get(path);
    if (!other || other.id !== device.id || other.unit !== device.unit) same = false;
  });
  return same;
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
  requestedNow: ReadonlyMap<DevicePath, boolean>,
  changes: readonly DeviceChange[],
  identify: ((path: DevicePath) => DeviceIdentity) | undefined,
): void {
  const unsupported = refusals.filter((refusal) => refusal.kind === "unsupported");
  if (unsupported.length === 0) return;
  const byPath = new Map(selection.devices.map((device) => [device.path, device]));
  const knownGood = new Set<DevicePath>();
  const accepted = [
    ...changes.filter((change) => change.to).map((change) => change.path),
    ...[...requestedNow].filter(([, value]) => value).map(([path]) => path),
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
  const shared = new Map<DevicePath, number>();
  for (const refusal of unsupported) {
    const device = byPath.get(refusal.path);
    refusal.suspects = suspectsFor(refusal.path, device?.ancestors ?? [], evidence, cached);
    for (const suspect of refusal.suspects) {
      shared.set(suspect.path, (shared.get(suspect.path) ?? 0) + 1);
    }
  }
  for (const refusal of unsupported) {
    refusal.message = explainUnsupported(refusal.path, refusal.id, refusal.suspects!, shared);
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
  const changes = [...undo.changes].reverse();
  /** Restored flags the fast path did not read back. */
  const restored: DeviceChange[] = [];
  for (const value of [true, false]) {
    // Newest first: a run's clears came after its requests, so they are restored first.
    const group = changes.filter((change) => change.from === value);
    const { outcomes, verified } = await writeRequested(
      kernel,
      group.map((change) => change.path),
      value,
      options.attempts ?? 3,
    );
    let state: string | undefined;
    for (const [index, outcome] of outcomes.entries()) {
      const change = group[index]!;
      if (outcome === null) {
        if (!verified[index]) restored.push(change);
        continue;
      }
      if (errnoOf(outcome) === "ENOENT") continue; // Vanished: nothing left to restore.
      state ??= await kernel.state().catch(() => "unknown");
      failures.push({
        path: change.path,
        ...(change.id ? { id: change.id } : {}),
        kind: state !== "normal"
          ? "state"
          : errnoOf(outcome) === "EAGAIN"
          ? "interrupted"
          : "other",
        ...(errnoOf(outcome) ? { errno: errnoOf(outcome) } : {}),
        requested: change.from,
        message: `Cannot restore the requested flag of "${change.path}" to ` +
          `${change.from ? 1 : 0}: ` +
          (state !== "normal" ? explainState(state) : describeError(outcome)),
      });
    }
  }
  const readBack = await readRequested(kernel, restored.map((change) => change.path));
  readBack.flags.forEach((flag, index) => {
    const change = restored[index]!;
    if (typeof flag === "boolean") {
      if (flag !== change.from) {
        failures.push({
          path: change.path,
          kind: "mismatch",
          requested: change.from,
          message: `After restoring the requested flag of "${change.path}" to ` +
            `${change.from ? 1 : 0} the kernel reads back ${flag ? 1 : 0}.`,
        });
      }
    } else if (errnoOf(flag) !== "ENOENT") {
      failures.push({
        path: change.path,
        kind: "other",
        requested: change.from,
        message: `Cannot verify the restored flag of "${change.path}": ${describeError(flag)}`,
      });
    }
  });
  if (failures.length > 0) throw new DeviceRefusedError(failures, false);
  const before = new Map<DevicePath, OwnedDevice>();
  for (const entry of undo.ownedBefore) {
    before.set(entry.path, { id: entry.id, ...(entry.unit ? { unit: entry.unit } : {}) });
  }
  await store.save(before);
}

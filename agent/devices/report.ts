/**
 * The full picture for `liveupdate-agent devices` and the update flow: what the
 * udev rules select, what the kernel says about each device, which ancestors go
 * with them, what the agent itself requested, and the conflicts — and, after an
 * update, which devices still wait to be reclaimed and by which unit.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import type { DeviceFlags, DeviceKernel, DevicePath, LuoState } from "../kernel/kernel.ts";
import { forEachLimited, IN_FLIGHT } from "./_pool.ts";
import type { DeviceProblem } from "./devices_error.ts";
import type { Owned } from "./ownership.ts";
import type { Selection } from "./selection.ts";

/** Version of the `devices --json` document. */
export const DEVICES_JSON_VERSION = 1;

/** One device in the report. */
export interface DeviceView {
  path: DevicePath;
  /** The udev id, when the device came from the udev database or the record. */
  id?: string;
  /** The unit that reclaims it (the rules' `LIVEUPDATE_UNIT`, or the record's). */
  unit?: string;
  /** Whether the agent's record says the agent requested it. */
  owned: boolean;
  /** The kernel's flags, when they could be read. */
  flags?: DeviceFlags;
  /** Why the flags could not be read. */
  error?: string;
  /** For a device passed over: why. For an ancestor: how many selected devices are below. */
  note?: string;
}

/** The kernel side of the report. */
export type KernelView =
  | { available: true; state: LuoState }
  | { available: false; reason: string };

/** Counts, for a one-line summary and for scripts. */
export interface DevicesSummary {
  selected: number;
  /** Selected devices whose `requested` is 1. */
  requested: number;
  /** Selected devices a reconcile would request. */
  toRequest: number;
  /** Devices the agent requested that are no longer selected (a reconcile clears them). */
  toClear: number;
  /** Devices someone else requested that are not selected: preserved anyway. */
  conflicts: number;
  /** Devices whose `preserved` is 1 (prepared, or after an update until finish). */
  preserved: number;
  /** Preserved devices not reclaimed yet. */
  pendingReclaim: number;
}

/** The report. */
export interface DevicesReport {
  version: typeof DEVICES_JSON_VERSION;
  tag: string;
  match: Readonly<Record<string, string>>;
  /** The udev tag index read. */
  index: string;
  /** Where the record of the agent's requests is. */
  record: string;
  kernel: KernelView;
  selected: DeviceView[];
  ancestors: DeviceView[];
  passedOver: DeviceView[];
  /** In the record but no longer selected. */
  deselected: DeviceView[];
  /** Requested by someone else and not selected (from the passed-over devices and `others`). */
  conflicts: DeviceView[];
  /** Preserved and not reclaimed (after an update): who should reclaim what. */
  pendingReclaim: DeviceView[];
  summary: DevicesSummary;
  warnings: DeviceProblem[];
  errors: DeviceProblem[];
  /** Whether every device was looked at (`others` held a full scan). */
  complete: boolean;
}

/** Options of {@link buildDevicesReport}. */
export interface ReportOptions {
  selection: Selection;
  /** The kernel, or why there is none to ask. */
  kernel: DeviceKernel | { unavailable: string };
  owned: Owned;
  /** Where the record is (for the report). */
  record: string;
  /** More devices to look at (a full scan, `listDevices`). */
  others?: readonly DevicePath[];
}

const CLEAR: DeviceFlags = { requested: false, preserved: false, reclaimed: false };

/**
 * Builds the report: reads the kernel's flags of every device it lists (in state
 * normal only `requested`, as `preserved` and `reclaimed` are 0 then). Reads only.
 */
export async function buildDevicesReport(options: ReportOptions): Promise<DevicesReport> {
  const { selection, owned } = options;
  const report: DevicesReport = {
    version: DEVICES_JSON_VERSION,
    tag: selection.tag,
    match: selection.match,
    index: selection.index,
    record: options.record,
    kernel: "unavailable" in options.kernel
      ? { available: false, reason: options.kernel.unavailable }
      : { available: true, state: "normal" },
    selected: [],
    ancestors: [],
    passedOver: [],
    deselected: [],
    conflicts: [],
    pendingReclaim: [],
    summary: {
      selected: selection.devices.length,
      requested: 0,
      toRequest: 0,
      toClear: 0,
      conflicts: 0,
      preserved: 0,
      pendingReclaim: 0,
    },
    warnings: selection.warnings,
    errors: selection.errors,
    complete: options.others !== undefined,
  };
  const selectedPaths = new Set(selection.devices.map((device) => device.path));
  report.selected = selection.devices.map((device) => ({
    path: device.path,
    id: device.id,
    ...(device.unit ?? owned.get(device.path)?.unit
      ? { unit: device.unit ?? owned.get(device.path)?.unit }
      : {}),
    owned: owned.has(device.path),
  }));
  report.ancestors = selection.ancestors.map((ancestor) => ({
    path: ancestor.path,
    owned: owned.has(ancestor.path),
    note: `${ancestor.below} selected below`,
  }));
  report.passedOver = selection.passedOver.map((over) => ({
    path: over.path ?? "",
    id: over.id,
    ...(over.unit ? { unit: over.unit } : {}),
    owned: over.path !== undefined && owned.has(over.path),
    note: over.reason,
  }));
  for (const [path, device] of owned) {
    if (!selectedPaths.has(path)) report.deselected.push({ path, ...device, owned: true });
  }
  const listed = new Set<DevicePath>([
    ...selectedPaths,
    ...report.ancestors.map((view) => view.path),
    ...report.deselected.map((view) => view.path),
  ]);
  const candidates: DeviceView[] = [];
  for (const view of report.passedOver) {
    if (view.path !== "" && !listed.has(view.path)) {
      candidates.push(view);
      listed.add(view.path);
    }
  }
  for (const path of options.others ?? []) {
    if (!listed.has(path)) {
      candidates.push({ path, owned: owned.has(path) });
      listed.add(path);
    }
  }

  if ("unavailable" in options.kernel) return report;
  const kernel = options.kernel;
  const state = await kernel.state();
  report.kernel = { available: true, state };
  const views = [
    ...report.selected,
    ...report.ancestors,
    ...report.deselected,
    ...candidates,
  ];
  await readFlags(kernel, state, views);

  const { summary } = report;
  for (const view of report.selected) {
    if (view.flags?.requested) summary.requested++;
    else if (view.flags) summary.toRequest++;
  }
  for (const view of report.deselected) if (view.flags?.requested) summary.toClear++;
  for (const view of candidates) {
    if (view.flags?.requested && !view.owned) report.conflicts.push(view);
  }
  summary.conflicts = report.conflicts.length;
  const everything = [...report.selected, ...report.ancestors, ...report.deselected, ...candidates];
  for (const view of everything) {
    if (!view.flags?.preserved) continue;
    summary.preserved++;
    if (!view.flags.reclaimed) report.pendingReclaim.push(view);
  }
  summary.pendingReclaim = report.pendingReclaim.length;
  return report;
}

async function readFlags(kernel: DeviceKernel, state: LuoState, views: DeviceView[]) {
  if (state === "normal" && kernel.readRequestedMany) {
    // preserved and reclaimed are 0 in state normal: one file per device is enough.
    const flags = await kernel.readRequestedMany(views.map((view) => view.path));
    flags.forEach((flag, index) => {
      if (typeof flag === "boolean") views[index]!.flags = { ...CLEAR, requested: flag };
    });
  }
  await forEachLimited(views.filter((view) => !view.flags), IN_FLIGHT, async (view) => {
    try {
      view.flags = await kernel.readDevice(view.path);
    } catch (error) {
      view.error = describeError(error);
    }
  });
}

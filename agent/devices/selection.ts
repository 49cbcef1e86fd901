/**
 * Which devices the operator's udev rules choose for preservation.
 *
 * udev keeps an index of tagged devices (`<udev_db>/tags/<tag>/<id>`, one empty
 * file per device id), so a selection lists that directory and reads only the
 * listed devices' data files: its cost grows with the number of tagged devices,
 * not with the size of the host. For each tagged device it
 *
 * 1. reads `data/<id>` (bounded) and checks the tag is *current* (`Q:`): the
 *    index is sticky and keeps devices a rule once tagged;
 * 2. maps the id to its device below `<sysfs>/devices` (see
 *    {@link SysfsResolver}) and finds the device ancestors the kernel preserves
 *    with it;
 * 3. applies the configured property filter (`devices.match`, exact values) to
 *    the device's properties: udev's (`E:` lines of its data file) and, for a
 *    key udev's data lacks, the kernel's (the device's sysfs `uevent` file). A
 *    real udev database holds only the properties udev added, never the
 *    kernel's own (`DRIVER`, `PCI_ID`, `MODALIAS`, …); `udevadm info` merges both.
 *
 * Nothing is written. Every problem is collected (not just the first) so one run
 * shows the operator everything to fix; {@link assertUsable} turns them into one
 * error before anything is changed.
 *
 * @module
 */

import { isUnitName } from "../config/fields.ts";
import type { DevicePath } from "../kernel/kernel.ts";
import {
  type BoundedRead,
  boundedResult,
  type DirEntry,
  failed,
  type FileIdentity,
  type FsFailure,
  type IdentityFs,
  type KernelFs,
  type Listing,
  newIdentity,
  readBounded,
} from "../host/mod.ts";
import type { CachedOutcome, CacheKey, SelectionCache } from "./selection_cache.ts";
import { type DeviceProblem, SelectionError } from "./devices_error.ts";
import { SysfsResolver } from "./sysfs_resolver.ts";
import { isUdevDataProblem, type UdevFacts, udevFacts } from "./udev_data.ts";
import { parseUdevId } from "./udev_id.ts";

/** The largest udev data file the agent reads (udev writes a few kilobytes). */
export const MAX_DATA_BYTES = 64 * 1024;
/** The most tag index entries the agent accepts for one tag. */
export const MAX_TAGGED = 1_000_000;
/** The udev property naming the unit that reclaims a device after the update. */
export const UNIT_PROPERTY = "LIVEUPDATE_UNIT";

/** Options of {@link selectDevices}. */
export interface SelectOptions {
  fs: KernelFs;
  /** The udev database (`paths.udev_db`, "/run/udev"). */
  udevDb: string;
  /** The sysfs root (`paths.sysfs`, "/sys"). */
  sysfs: string;
  /** The udev tag marking devices for preservation (`devices.tag`). */
  tag: string;
  /** Properties a tagged device must have, with exactly these values (`devices.match`). */
  match?: Readonly<Record<string, string>>;
  /**
   * Outcomes remembered from earlier runs, made for {@link selectionCacheKey} of
   * these options: used (and added to) when `fs` tells file identities.
   */
  cache?: SelectionCache;
}

/**
 * The version of the rules by which a tagged device is selected or passed over
 * (part of the selection cache's key): bump it with any change to what
 * {@link selectDevices} works out for a device, so older caches are not used.
 */
export const SELECTION_RULES = 2;

/** What a selection cache for `options` is made for. */
export function selectionCacheKey(options: Omit<SelectOptions, "fs" | "cache">): CacheKey {
  return {
    udevDb: options.udevDb,
    sysfs: options.sysfs,
    tag: options.tag,
    match: options.match ?? {},
    rules: `selection rules ${SELECTION_RULES}, data files below ${MAX_DATA_BYTES} bytes`,
  };
}

/** A device the rules select. */
export interface SelectedDevice {
  /** The udev id ("+pci:0000:01:00.0"). */
  id: string;
  /** The device below `<sysfs>/devices`. */
  path: DevicePath;
  /** The unit that reclaims it after the update (`LIVEUPDATE_UNIT`), if the rules name one. */
  unit?: string;
  /** Its device ancestors, nearest first: the kernel preserves them with it. */
  ancestors: readonly DevicePath[];
}

/** A tagged device the selection passes over, and why. */
export interface PassedOver {
  id: string;
  /** The device, when it could be found in sysfs. */
  path?: DevicePath;
  /** Why it is not selected, as a phrase ("no rule sets the tag now"). */
  reason: string;
  unit?: string;
}

/** An ancestor of selected devices that is not selected itself. */
export interface SelectedAncestor {
  path: DevicePath;
  /** How many selected devices are below it. */
  below: number;
}

/** The outcome of {@link selectDevices}. */
export interface Selection {
  tag: string;
  match: Readonly<Record<string, string>>;
  /** The tag index directory that was read. */
  index: string;
  /** Selected devices, sorted by path. */
  devices: SelectedDevice[];
  /** Ancestors preserved with them, sorted by path. */
  ancestors: SelectedAncestor[];
  /** Tagged devices that are not selected. */
  passedOver: PassedOver[];
  /** Things udev itself leaves behind (stale index entries): reported, not fatal. */
  warnings: DeviceProblem[];
  /** Problems that make the selection unusable (nothing may be written). */
  errors: DeviceProblem[];
}

/** A selected device (the same shape however it was worked out). */
function selected(
  id: string,
  path: DevicePath,
  unit: string | undefined,
  ancestors: readonly DevicePath[],
): SelectedDevice {
  return unit ? { id, path, unit, ancestors } : { id, path, ancestors };
}

/** A device passed over (the same shape however it was worked out). */
function passedOver(
  id: string,
  path: DevicePath | undefined,
  reason: string,
  unit: string | undefined,
): PassedOver {
  return path === undefined
    ? (unit ? { id, reason, unit } : { id, reason })
    : (unit ? { id, path, reason, unit } : { id, path, reason });
}

/**
 * Why the device's properties do not satisfy `match`, or undefined. A key missing
 * from udev's data is looked up in the kernel's uevent properties (`uevent()`,
 * read once, undefined when the device's sysfs entry is unknown or unreadable).
 */
function matchProblem(
  record: UdevFacts,
  match: Readonly<Record<string, string>>,
  uevent: () => Map<string, string> | undefined,
): string | undefined {
  let kernel: Map<string, string> | undefined | null = null;
  for (const [key, wanted] of Object.entries(match)) {
    let value = record.properties.get(key);
    if (value === undefined) {
      if (kernel === null) kernel = uevent();
      value = kernel?.get(key);
    }
    if ((value ?? "") !== wanted) {
      return value === undefined
        ? `it has no property ${key} in udev's data or its uevent file (wanted "${wanted}")`
        : `its property ${key} is "${value}", not "${wanted}"`;
    }
  }
  return undefined;
}

/**
 * Reads the udev database and sysfs and returns the selection with every problem
 * found. Reads `<udevDb>/tags/<tag>/`, `<udevDb>/data/<id>` of each tagged device,
 * and sysfs links; writes nothing. Needs read access to both trees.
 */
export function selectDevices(options: SelectOptions): Selection {
  const { fs, udevDb, sysfs, tag } = options;
  const match = options.match ?? {};
  const index = `${udevDb}/tags/${tag}`;
  const selection: Selection = {
    tag,
    match,
    index,
    devices: [],
    ancestors: [],
    passedOver: [],
    warnings: [],
    errors: [],
  };
  // With a cache (and a KernelFs that tells file identities), an unchanged tag index
  // whose data files are all unchanged gives the selection remembered; otherwise a
  // device whose data file is unchanged takes the outcome remembered for it.
  const identities = options.cache ? fs.identity : undefined;
  const cache = identities ? options.cache : undefined;
  let listing: Listing | FsFailure | undefined;
  if (cache) {
    listing = identities!.list(index, MAX_TAGGED);
    if (!failed(listing)) {
      const known = cache.unchanged(listing.key, identities!, `${udevDb}/data`);
      if (known !== undefined) return { ...selection, ...known };
    }
  }
  const ids = listIndex(
    listing === undefined
      ? fs.readDir(index, MAX_TAGGED)
      : failed(listing)
      ? listing
      : listing.entries(),
    index,
    selection,
  );
  const resolver = new SysfsResolver(fs, sysfs);
  const buffer = new Uint8Array(MAX_DATA_BYTES + 1);
  const keep = new Set([UNIT_PROPERTY, "INTERFACE", ...Object.keys(match)]);
  const identity = newIdentity();
  for (const name of ids) {
    const file = `${udevDb}/data/${name}`;
    if (cache?.has(name) && identities!.identify(file, identity)) {
      const known = cache.lookup(name, identity);
      if (known !== undefined) {
        const { path, unit, reason } = known;
        if (reason !== undefined) selection.passedOver.push(passedOver(name, path, reason, unit));
        else selection.devices.push(selected(name, path, unit, resolver.ancestors(path)));
        continue;
      }
    }
    const outcome = evaluate(name, file);
    if (outcome === undefined) cache?.skip();
    else cache?.remember(name, identity);
  }

  /**
   * Works out one tagged device and adds it to the selection; returns the outcome
   * when it is clean enough to remember (selected, or passed over with its path).
   */
  function evaluate(name: string, file: string): CachedOutcome | undefined {
    const id = parseUdevId(name);
    if ("problem" in id) {
      selection.errors.push({
        id: name,
        message: `The udev tag index entry "${index}/${name}" is not a device id: ${id.problem}. ` +
          "udev does not write such entries; remove the file.",
      });
      return undefined;
    }
    // Never through a symlink: udev writes plain files, and a planted link must not
    // make the agent read (and quote in its errors) some other file.
    const read = cache
      ? readIdentified(identities!, file, buffer, identity)
      : readBounded(fs, file, buffer, { noFollow: true });
    if (read.kind === "missing") {
      selection.warnings.push({
        id: name,
        message: `The udev tag index lists "${name}" but "${file}" does not exist ` +
          "(a device udev is still removing); it is skipped.",
      });
      return undefined;
    }
    if (read.kind === "failed") {
      selection.errors.push({
        id: name,
        message: read.errno === "ELOOP"
          ? `The udev data file "${file}" is a symlink; udev writes plain files there. ` +
            "Remove it."
          : `Cannot read the udev data file "${file}" (${read.errno}).`,
      });
      return undefined;
    }
    if (read.kind === "too-big") {
      selection.errors.push({
        id: name,
        message: `The udev data file "${file}" is larger than ${MAX_DATA_BYTES} bytes; ` +
          "udev writes a few kilobytes. Refusing to read it: check what wrote it, then run " +
          `"udevadm trigger" on the device to rewrite it.`,
      });
      return undefined;
    }
    const record = udevFacts(read.bytes, tag, keep);
    if (isUdevDataProblem(record)) {
      const where = record.line > 0 ? ` line ${record.line}` : "";
      selection.errors.push({
        id: name,
        message: `The udev data file "${file}"${where} is malformed: ${record.problem}. ` +
          `udev does not write this; check what else writes below "${udevDb}", then run ` +
          `"udevadm trigger" on the device to rewrite it.`,
      });
      return undefined;
    }
    const unit = record.properties.get(UNIT_PROPERTY) || undefined;
    const resolved = resolver.resolve(id, record);
    let reason: string | undefined;
    if (!record.tagged) {
      reason = `no rule sets the tag "${tag}" now (udev keeps it in the index until the ` +
        "device is removed)";
    } else {
      reason = matchProblem(
        record,
        match,
        () => "path" in resolved ? resolver.uevent(resolved.path) : undefined,
      );
    }
    if (reason !== undefined) {
      if (!("path" in resolved)) {
        selection.passedOver.push(passedOver(name, undefined, reason, unit));
        return undefined;
      }
      selection.passedOver.push(passedOver(name, resolved.path, reason, unit));
      return { path: resolved.path, reason, unit };
    }
    if ("problem" in resolved) {
      const advice = resolved.vanished
        ? 'Run "udevadm settle" and retry.'
        : "The agent cannot preserve it; change the udev rule that tags it.";
      selection.errors.push({
        id: name,
        message: `The tagged device "${name}" cannot be mapped to sysfs: ${resolved.problem}. ` +
          advice,
      });
      return undefined;
    }
    if (unit !== undefined && !isUnitName(unit)) {
      selection.errors.push({
        id: name,
        path: resolved.path,
        message: `The udev rules set ${UNIT_PROPERTY}="${unit}" on "${name}", which is not a ` +
          'systemd unit name such as "vm@1.service"; fix the rule.',
      });
      return undefined;
    }
    selection.devices.push(selected(name, resolved.path, unit, resolver.ancestors(resolved.path)));
    return { path: resolved.path, unit, reason: undefined };
  }
  selection.devices.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  // Two ids for one device (udev never does this, but a stray index entry could).
  const unique = selection.devices.filter((device, index, all) => {
    const earlier = index > 0 ? all[index - 1]! : undefined;
    if (earlier?.path !== device.path) return true;
    selection.warnings.push({
      id: device.id,
      path: device.path,
      message: `The udev ids "${earlier.id}" and "${device.id}" both lead to "${device.path}"; ` +
        "it is selected once.",
    });
    return false;
  });
  if (unique.length !== selection.devices.length) selection.devices = unique;

  selection.passedOver.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const below = new Map<DevicePath, number>();
  for (const device of selection.devices) {
    for (const ancestor of device.ancestors) {
      below.set(ancestor, (below.get(ancestor) ?? 0) + 1);
    }
  }
  // A selected device that is also an ancestor of another is listed as selected only.
  if (below.size > 0) { for (const device of selection.devices) below.delete(device.path); }
  selection.ancestors = [...below].map(([path, count]) => ({ path, below: count }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (cache && listing !== undefined && !failed(listing)) {
    cache.finish(selection, listing.key, ids.length);
  }
  return selection;
}

function listIndex(
  entries: DirEntry[] | FsFailure,
  index: string,
  selection: Selection,
): string[] {
  if (failed(entries)) {
    // No device ever had the tag: an empty selection.
    if (entries.errno === "ENOENT") return [];
    selection.errors.push({
      message: entries.errno === "ENOTDIR"
        ? `The udev tag index "${index}" is not a directory.`
        : entries.errno === "E2BIG"
        ? `The udev tag index "${index}" lists more than ${MAX_TAGGED} devices, more than ` +
          "the agent acts on. Check the rules that set the tag."
        : `Cannot list the udev tag index "${index}" (${entries.errno}).`,
    });
    return [];
  }
  const ids: string[] = [];
  for (const entry of entries) {
    if (!entry.isFile) {
      selection.errors.push({
        id: entry.name,
        message: `The udev tag index entry "${index}/${entry.name}" is not a regular file; ` +
          "udev writes empty files there. Remove it.",
      });
      continue;
    }
    ids.push(entry.name);
  }
  return ids;
}

/** Throws a {@link SelectionError} listing every error of `selection`, if it has any. */
export function assertUsable(selection: Selection): void {
  if (selection.errors.length > 0) throw new SelectionError(selection.errors);
}

/** {@link readBounded}, with the identity of the file read (see IdentityFs.readIdentified). */
function readIdentified(
  identities: IdentityFs,
  path: string,
  buffer: Uint8Array<ArrayBuffer>,
  identity: FileIdentity,
): BoundedRead {
  return boundedResult(identities.readIdentified(path, buffer, identity), buffer);
}

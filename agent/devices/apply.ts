/**
 * The device layer as the update flow and the CLI use it: selection, reconcile
 * and report from the configuration (`[devices]`, `paths.udev_db`,
 * `paths.sysfs`, `paths.state_dir`, and `paths.runtime_dir` for the selection cache).
 *
 * @module
 */

import type { Config } from "../config/mod.ts";
import type { FileSystem } from "../host/mod.ts";
import type { DeviceKernel } from "../kernel/kernel.ts";
import type { Logger } from "../log/mod.ts";
import type { KernelFs } from "../host/mod.ts";
import { fileOwnershipStore, type OwnershipStore } from "./ownership.ts";
import { reconcileDevices, type ReconcileResult } from "./reconcile.ts";
import { listDevices } from "./scan.ts";
import {
  selectDevices,
  type Selection,
  selectionCacheKey,
  type SelectOptions,
} from "./selection.ts";
import { fileSelectionCacheStore, type SelectionCacheStore } from "./selection_cache.ts";
import { SysfsResolver } from "./sysfs_resolver.ts";

/** What the device layer reads and writes through. */
export interface DeviceLayer {
  /** The udev database and sysfs links (`libcKernelFs(libc)` in production). */
  fs: KernelFs;
  /** The host's file system, for the record in `paths.state_dir`. */
  hostFs: FileSystem;
  /** The kernel's per-device part (`requireDevices(kernel)`). */
  kernel: DeviceKernel;
  log?: Logger;
}

/** The selection the configuration asks for. Reads the udev database and sysfs. */
export function selectionFor(config: Config, fs: KernelFs): Selection {
  return selectDevices(selectOptionsFor(config, fs));
}

function selectOptionsFor(config: Config, fs: KernelFs): SelectOptions {
  return {
    fs,
    udevDb: config.paths.udev_db,
    sysfs: config.paths.sysfs,
    tag: config.devices.tag,
    match: config.devices.match,
  };
}

/** The selection cache, in `paths.runtime_dir`. */
export function selectionCacheStoreFor(config: Config, hostFs: FileSystem): SelectionCacheStore {
  return fileSelectionCacheStore(hostFs, config.paths.runtime_dir);
}

/**
 * {@link selectDevices} through a selection cache (selection_cache.ts): devices
 * whose udev data file is unchanged since an earlier run take the outcome
 * remembered then. The cache is loaded before and saved after (when it changed);
 * a cache that cannot be read or written only costs time (logged at debug level).
 * Needs what {@link selectDevices} needs, and read and write access to the cache's
 * directory.
 */
export async function selectDevicesCached(
  options: Omit<SelectOptions, "cache">,
  store: SelectionCacheStore,
  log?: Logger,
): Promise<Selection> {
  if (!options.fs.identity) return selectDevices(options);
  const { cache, problem } = await store.load(selectionCacheKey(options));
  if (problem !== undefined) {
    log?.debug(`Not using the device selection cache "${store.where}": ${problem}.`);
  }
  let selection: Selection;
  try {
    selection = selectDevices({ ...options, cache });
  } finally {
    const failure = await store.save(cache);
    if (failure) {
      log?.debug(`Cannot write the device selection cache "${store.where}": ${failure.message}.`);
    }
  }
  log?.debug("Device selection read.", { cached: cache.hits, read: cache.misses });
  return selection;
}

/** The selection the configuration asks for, through the cache in `paths.runtime_dir`. */
export function cachedSelectionFor(config: Config, layer: DeviceLayer): Promise<Selection> {
  return selectDevicesCached(
    selectOptionsFor(config, layer.fs),
    selectionCacheStoreFor(config, layer.hostFs),
    layer.log,
  );
}

/** The record of the agent's requests, in `paths.state_dir`. */
export function ownershipStoreFor(config: Config, hostFs: FileSystem): OwnershipStore {
  return fileOwnershipStore(hostFs, config.paths.state_dir);
}

/** Options of {@link applyDeviceSelection}. */
export interface ApplyOptions {
  /** Plan only; write nothing. */
  dryRun?: boolean;
  /** Use this selection instead of reading it again. */
  selection?: Selection;
}

/**
 * Selects the devices the udev rules choose and reconciles the kernel's
 * `requested` flags with them (see {@link reconcileDevices}): the step "request
 * devices chosen by udev rules" of prepare. With `devices.clear_foreign`, every
 * device is scanned for requests someone else made. Returns what changed (and
 * `undo` to reverse it); throws SelectionError, DeviceStateError,
 * DeviceRefusedError or OwnershipRecordError.
 */
export async function applyDeviceSelection(
  config: Config,
  layer: DeviceLayer,
  options: ApplyOptions = {},
): Promise<ReconcileResult> {
  const selection = options.selection ?? await cachedSelectionFor(config, layer);
  const resolver = new SysfsResolver(layer.fs, config.paths.sysfs);
  return await reconcileDevices({
    kernel: layer.kernel,
    selection,
    store: ownershipStoreFor(config, layer.hostFs),
    clearForeign: config.devices.clear_foreign,
    ...(config.devices.clear_foreign
      ? { others: listDevices({ fs: layer.fs, sysfs: config.paths.sysfs }) }
      : {}),
    identify: (path) => resolver.identity(path),
    dryRun: options.dryRun ?? false,
    ...(layer.log ? { log: layer.log } : {}),
  });
}

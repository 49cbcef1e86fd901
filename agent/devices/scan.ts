/**
 * Every device below `<sysfs>/devices` that has live-update flags: the full scan
 * behind `devices --all` and a complete `devices.clear_foreign`, for the requests
 * the tag index cannot show (someone else's). It visits every directory of the
 * device tree, so its cost grows with the host (about a second per 100,000
 * devices); the selection itself never needs it.
 *
 * @module
 */

import type { DevicePath } from "../kernel/kernel.ts";
import { failed, type KernelFs } from "../host/mod.ts";

/** Directories inside a device that hold attributes, never child devices. */
const NOT_CHILDREN = new Set(["liveupdate", "power", "msi_irqs", "holders", "slaves", "queue"]);
/** sysfs's device tree is shallow; deeper means a loop or garbage. */
const MAX_DEPTH = 64;

/** Options of {@link listDevices}. */
export interface ScanOptions {
  fs: KernelFs;
  /** The sysfs root. */
  sysfs: string;
  /** Stop after this many directories (default 5,000,000). */
  limit?: number;
}

/**
 * The paths of every device with a `liveupdate/` directory, parents first.
 * Follows no symlink. Throws an Error naming the directory when the tree is
 * deeper or larger than sysfs can be.
 */
export function listDevices(options: ScanOptions): DevicePath[] {
  const { fs, sysfs } = options;
  const limit = options.limit ?? 5_000_000;
  const devices: DevicePath[] = [];
  const stack: [DevicePath, number][] = [];
  const top = fs.readDir(`${sysfs}/devices`);
  if (failed(top)) throw new Error(`Cannot list "${sysfs}/devices" (${top.errno}).`);
  for (const entry of top) if (entry.isDirectory) stack.push([entry.name, 1]);
  let visited = 0;
  while (stack.length > 0) {
    const [path, depth] = stack.pop()!;
    if (++visited > limit) {
      throw new Error(`"${sysfs}/devices" holds more than ${limit} directories; not scanning on.`);
    }
    if (depth > MAX_DEPTH) throw new Error(`"${sysfs}/devices/${path}" is nested too deep.`);
    const entries = fs.readDir(`${sysfs}/devices/${path}`);
    if (failed(entries)) continue; // Vanished while scanning.
    for (const entry of entries) {
      if (!entry.isDirectory) continue;
      if (entry.name === "liveupdate") devices.push(path);
      else if (!NOT_CHILDREN.has(entry.name)) stack.push([`${path}/${entry.name}`, depth + 1]);
    }
  }
  return devices.sort();
}

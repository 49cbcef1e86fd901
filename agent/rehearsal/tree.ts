/**
 * The device trees of simulated hosts (the rehearsal's and the tests'): one model,
 * written out three ways so every view of a simulated host agrees —
 *
 * - `writeSimTree`: the data file the simulated LUO kernel (FUSE) serves,
 * - `writePlainSysfs` (tests/sim/tree.ts): the same layout as plain files
 *   (benchmarks on tmpfs),
 * - `writeUdevDb`: the matching udev database (`data/<id>`, `tags/<tag>/<id>`),
 *   what udev would hold after its rules ran.
 *
 * The data file format (version 1), one device per line, parents before
 * children, columns separated by a tab:
 *
 *     path  bus_support  driver_support  subsystem  driver  devnum  ifindex  [KEY=VALUE ...]
 *
 * `path` is below `devices/`; `bus_support`/`driver_support` are `0` or `1`;
 * `subsystem`, `driver`, `devnum` (`c:MAJ:MIN` or `b:MAJ:MIN`) and `ifindex` are
 * `-` when absent; the remaining columns are the device's uevent properties. Lines
 * starting with `#` are comments. No field may contain a tab or a newline.
 *
 * The simulated kernel (`luo-sim`, tests/sim/tree.c) reads this file;
 * `startSimulator` tells it which subsystems are buses ({@link BUS_SUBSYSTEMS}).
 * Writing the files needs `--allow-write` on them.
 *
 * A path component that is not itself a listed device is a plain grouping
 * directory, as in sysfs (`…/0000:01:00.0/nvme/nvme0`, `…/net/eth0`): the device's
 * parent for the ancestor rule is its nearest listed ancestor.
 *
 * @module
 */

/** Subsystems that are buses (`bus/<name>/devices/`); the others are classes. */
export const BUS_SUBSYSTEMS: ReadonlySet<string> = new Set(["pci", "platform", "usb", "virtio"]);

/** One device of a simulated host. */
export interface SimDevice {
  /** Path below `devices/`, e.g. "pci0000:00/0000:00:01.0". */
  path: string;
  subsystem?: string;
  driver?: string;
  /** Whether the device's bus has live-update callbacks. */
  busSupport: boolean;
  /** Whether the device's driver has live-update callbacks. */
  driverSupport: boolean;
  devnum?: { kind: "c" | "b"; major: number; minor: number };
  ifindex?: number;
  /** Kernel uevent properties (the `uevent` file). */
  uevent: Record<string, string>;
  /** Properties udev rules added (E: lines besides the uevent ones). */
  udevProperties?: Record<string, string>;
  /** udev tags. */
  tags?: string[];
}

/** A simulated host's devices, parents before children. */
export interface SimTree {
  devices: SimDevice[];
}

/** The device's name (the last path component). */
export function sysname(device: SimDevice): string {
  return device.path.slice(device.path.lastIndexOf("/") + 1);
}

/** The device's udev id (`c10:200`, `b259:0`, `n3`, `+pci:0000:01:00.0`), if udev knows it. */
export function udevId(device: SimDevice): string | undefined {
  if (device.devnum) return `${device.devnum.kind}${device.devnum.major}:${device.devnum.minor}`;
  if (device.ifindex !== undefined) return `n${device.ifindex}`;
  if (device.subsystem) return `+${device.subsystem}:${sysname(device)}`;
  return undefined;
}

function checkField(value: string, what: string): string {
  if (/[\t\n]/.test(value) || value === "") {
    throw new Error(`Tree ${what} ${JSON.stringify(value)} is empty or holds a tab or newline`);
  }
  return value;
}

/** One device's line of the simulator's data file (no newline). */
export function simTreeLine(device: SimDevice): string {
  const devnum = device.devnum
    ? `${device.devnum.kind}:${device.devnum.major}:${device.devnum.minor}`
    : "-";
  const columns = [
    checkField(device.path, "path"),
    device.busSupport ? "1" : "0",
    device.driverSupport ? "1" : "0",
    device.subsystem ? checkField(device.subsystem, "subsystem") : "-",
    device.driver ? checkField(device.driver, "driver") : "-",
    devnum,
    device.ifindex === undefined ? "-" : String(device.ifindex),
    ...Object.entries(device.uevent).map(([k, v]) => checkField(`${k}=${v}`, "property")),
  ];
  return columns.join("\t");
}

/** The simulator's data file for `tree`. */
export function simTreeText(tree: SimTree): string {
  const lines = ["# luo-sim tree v1"];
  for (const device of tree.devices) lines.push(simTreeLine(device));
  return lines.join("\n") + "\n";
}

/** Writes the simulator's data file for `tree` to `file`. */
export async function writeSimTree(tree: SimTree, file: string): Promise<void> {
  await Deno.writeTextFile(file, simTreeText(tree));
}

/** The contents of a device's `uevent` file. */
export function ueventText(device: SimDevice): string {
  return Object.entries(device.uevent).map(([k, v]) => `${k}=${v}\n`).join("");
}

/** The udev database file (`data/<id>`) of a device. */
export function udevDataText(device: SimDevice, initialized = 1_700_000_000_000_000): string {
  const lines = [`I:${initialized}`];
  const properties = { ...device.uevent, ...device.udevProperties };
  for (const [key, value] of Object.entries(properties)) lines.push(`E:${key}=${value}`);
  for (const tag of device.tags ?? []) lines.push(`G:${tag}`);
  for (const tag of device.tags ?? []) lines.push(`Q:${tag}`);
  lines.push("V:1");
  return lines.join("\n") + "\n";
}

/**
 * Writes the udev database of `tree` under `root` (what /run/udev holds): one
 * `data/<id>` file per device udev knows, and `tags/<tag>/<id>` index entries.
 */
export async function writeUdevDb(tree: SimTree, root: string): Promise<void> {
  await Deno.mkdir(`${root}/data`, { recursive: true });
  const tagDirs = new Set<string>();
  for (const device of tree.devices) {
    const id = udevId(device);
    if (!id) continue;
    await Deno.writeTextFile(`${root}/data/${id}`, udevDataText(device));
    for (const tag of device.tags ?? []) {
      const dir = `${root}/tags/${tag}`;
      if (!tagDirs.has(dir)) {
        await Deno.mkdir(dir, { recursive: true });
        tagDirs.add(dir);
      }
      await Deno.writeTextFile(`${dir}/${id}`, "");
    }
  }
}

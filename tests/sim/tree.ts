/**
 * The device trees tests run against: one model, written out three ways so every
 * view of a test host agrees —
 *
 * - `writeSimTree`: the data file the simulated LUO kernel (FUSE) serves,
 * - `writePlainSysfs`: the same layout as plain files (benchmarks on tmpfs),
 * - `writeUdevDb`: the matching udev database (`data/<id>`, `tags/<tag>/<id>`).
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
 * The simulated kernel (`luo-sim`, tests/sim/tree.c) reads this file; the harness
 * tells it which subsystems are buses ({@link BUS_SUBSYSTEMS}).
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

function ueventText(device: SimDevice): string {
  return Object.entries(device.uevent).map(([k, v]) => `${k}=${v}\n`).join("");
}

function relative(fromDir: string, to: string): string {
  const depth = fromDir.split("/").filter(Boolean).length;
  return "../".repeat(depth) + to;
}

/**
 * Writes `tree` as plain files under `root`, in sysfs's layout: `devices/…/<dev>/`
 * with `uevent`, `liveupdate/{requested,preserved,reclaimed}` and `subsystem`/`driver`
 * links; `bus/<bus>/devices/<name>`, `class/<class>/<name>`, `dev/{char,block}/<M:m>`
 * links; and `kernel/liveupdate/{state,prepare,finish}`. No kernel semantics.
 */
export async function writePlainSysfs(tree: SimTree, root: string): Promise<void> {
  await Deno.mkdir(`${root}/kernel/liveupdate`, { recursive: true });
  await Deno.writeTextFile(`${root}/kernel/liveupdate/state`, "normal\n");
  await Deno.writeTextFile(`${root}/kernel/liveupdate/prepare`, "");
  await Deno.writeTextFile(`${root}/kernel/liveupdate/finish`, "");
  const made = new Set<string>();
  const mkdir = async (dir: string) => {
    if (made.has(dir)) return;
    await Deno.mkdir(dir, { recursive: true });
    made.add(dir);
  };
  for (const device of tree.devices) {
    const dir = `devices/${device.path}`;
    await mkdir(`${root}/${dir}/liveupdate`);
    await Deno.writeTextFile(`${root}/${dir}/uevent`, ueventText(device));
    for (const flag of ["requested", "preserved", "reclaimed"]) {
      await Deno.writeTextFile(`${root}/${dir}/liveupdate/${flag}`, "0\n");
    }
    const name = sysname(device);
    if (device.subsystem) {
      const isBus = BUS_SUBSYSTEMS.has(device.subsystem);
      const home = isBus ? `bus/${device.subsystem}` : `class/${device.subsystem}`;
      await mkdir(`${root}/${home}`);
      await Deno.symlink(relative(dir, home), `${root}/${dir}/subsystem`);
      const linkDir = isBus ? `${home}/devices` : home;
      await mkdir(`${root}/${linkDir}`);
      await Deno.symlink(relative(linkDir, dir), `${root}/${linkDir}/${name}`);
      if (device.driver && isBus) {
        const driverDir = `bus/${device.subsystem}/drivers/${device.driver}`;
        await mkdir(`${root}/${driverDir}`);
        await Deno.symlink(relative(dir, driverDir), `${root}/${dir}/driver`);
      }
    }
    if (device.devnum) {
      const linkDir = device.devnum.kind === "c" ? "dev/char" : "dev/block";
      await mkdir(`${root}/${linkDir}`);
      const link = `${root}/${linkDir}/${device.devnum.major}:${device.devnum.minor}`;
      await Deno.symlink(relative(linkDir, dir), link);
    }
  }
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

/** Options of {@link generateTree}. */
export interface GenerateOptions {
  /** Total number of devices (at least 1). */
  devices: number;
  /** How many PCI functions to tag for preservation (spread evenly). */
  marked: number;
  /** The udev tag used for marking. */
  tag?: string;
  /**
   * Every Nth root port's bus lacks live-update support, so preserving anything
   * below it fails with EINVAL (0: none).
   */
  unsupportedPortEvery?: number;
}

const hex = (value: number, width: number) => value.toString(16).padStart(width, "0");

/**
 * Generates a deterministic, host-like tree of `options.devices` devices: PCI root
 * complexes with root ports, and below them vfio-pci functions, NVMe controllers
 * (with their char and block devices) and NICs (with their net devices).
 * `options.marked` vfio-pci functions are tagged for preservation, each naming a
 * reclaiming unit in `LIVEUPDATE_UNIT`.
 */
export function generateTree(options: GenerateOptions): SimTree {
  const tag = options.tag ?? "liveupdate";
  const devices: SimDevice[] = [];
  let nvme = 0;
  let ifindex = 2;
  const endpoints: SimDevice[] = [];
  const full = () => devices.length >= options.devices;
  for (let domain = 0; !full(); domain++) {
    const rootPath = `pci${hex(domain, 4)}:00`;
    devices.push({ path: rootPath, busSupport: true, driverSupport: true, uevent: {} });
    for (let port = 1; port <= 16 && !full(); port++) {
      const portName = `${hex(domain, 4)}:00:${hex(port, 2)}.0`;
      const portPath = `${rootPath}/${portName}`;
      const supported = !options.unsupportedPortEvery || port % options.unsupportedPortEvery !== 0;
      devices.push({
        path: portPath,
        subsystem: "pci",
        driver: "pcieport",
        busSupport: supported,
        driverSupport: true,
        uevent: { DRIVER: "pcieport", PCI_ID: "8086:7a38", PCI_SLOT_NAME: portName },
      });
      for (let fn = 0; fn < 256 && !full(); fn++) {
        const name = `${hex(domain, 4)}:${hex(port, 2)}:${hex(fn >> 3, 2)}.${fn & 7}`;
        const path = `${portPath}/${name}`;
        const kind = fn % 8 === 6 ? "nvme" : fn % 8 === 7 ? "nic" : "vfio";
        if (kind === "vfio") {
          const device: SimDevice = {
            path,
            subsystem: "pci",
            driver: "vfio-pci",
            busSupport: true,
            driverSupport: true,
            uevent: {
              DRIVER: "vfio-pci",
              PCI_CLASS: "20000",
              PCI_ID: "15b3:101e",
              PCI_SUBSYS_ID: "15b3:0007",
              PCI_SLOT_NAME: name,
              MODALIAS: "pci:v000015B3d0000101Esv000015B3sd00000007bc02sc00i00",
            },
            udevProperties: { ID_VENDOR_FROM_DATABASE: "Mellanox Technologies" },
          };
          devices.push(device);
          endpoints.push(device);
        } else if (kind === "nvme") {
          const n = nvme++;
          devices.push({
            path,
            subsystem: "pci",
            driver: "nvme",
            busSupport: true,
            driverSupport: false,
            uevent: { DRIVER: "nvme", PCI_ID: "144d:a80a", PCI_SLOT_NAME: name },
          });
          if (!full()) {
            devices.push({
              path: `${path}/nvme/nvme${n}`,
              subsystem: "nvme",
              busSupport: true,
              driverSupport: false,
              devnum: { kind: "c", major: 240, minor: n },
              uevent: { MAJOR: "240", MINOR: String(n), DEVNAME: `nvme${n}` },
            });
          }
          if (!full()) {
            devices.push({
              path: `${path}/nvme/nvme${n}/nvme${n}n1`,
              subsystem: "block",
              busSupport: true,
              driverSupport: false,
              devnum: { kind: "b", major: 259, minor: n },
              uevent: { MAJOR: "259", MINOR: String(n), DEVNAME: `nvme${n}n1`, DEVTYPE: "disk" },
              udevProperties: { ID_SERIAL: `Samsung_SSD_${hex(n, 8)}` },
            });
          }
        } else {
          const index = ifindex++;
          devices.push({
            path,
            subsystem: "pci",
            driver: "mlx5_core",
            busSupport: true,
            driverSupport: true,
            uevent: { DRIVER: "mlx5_core", PCI_ID: "15b3:1017", PCI_SLOT_NAME: name },
          });
          if (!full()) {
            devices.push({
              path: `${path}/net/eth${index - 2}`,
              subsystem: "net",
              busSupport: true,
              driverSupport: true,
              ifindex: index,
              uevent: { INTERFACE: `eth${index - 2}`, IFINDEX: String(index) },
            });
          }
        }
      }
    }
  }
  const marked = Math.min(options.marked, endpoints.length);
  for (let i = 0; i < marked; i++) {
    const device = endpoints[Math.floor((i * endpoints.length) / marked)]!;
    device.tags = [tag];
    device.udevProperties = {
      ...device.udevProperties,
      LIVEUPDATE_UNIT: `vm-${i}.service`,
    };
  }
  return { devices };
}

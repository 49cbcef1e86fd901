/**
 * The device-tree model of simulated hosts lives in the agent
 * (`agent/rehearsal/tree.ts`: the model, the simulator's data file, the udev
 * database); this file re-exports it and adds what only tests and benchmarks use:
 * the same tree as plain files (`writePlainSysfs`) and host-like trees of any size
 * (`generateTree`).
 *
 * @module
 */

import {
  BUS_SUBSYSTEMS,
  type SimDevice,
  type SimTree,
  sysname,
  ueventText,
} from "../../agent/rehearsal/tree.ts";

export * from "../../agent/rehearsal/tree.ts";

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

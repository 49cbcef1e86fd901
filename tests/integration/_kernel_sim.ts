/**
 * Helpers of the kernel layer's integration tests: a small device tree for the
 * simulated kernel, and the agent's real kernel layer opened on it.
 *
 * @module
 */

import { type Libc, libcKernelFs } from "../../agent/host/mod.ts";
import {
  type DeviceKernel,
  type Kernel,
  type KernelContext,
  openKernel,
  requireDevices,
  requireStateMachine,
  type StateMachine,
} from "../../agent/kernel/mod.ts";
import type { Sim } from "../sim/harness.ts";
import type { SimDevice, SimTree } from "../sim/tree.ts";

/** Device paths of {@link kernelTree}. */
export const DEV = {
  root: "pci0000:00",
  port: "pci0000:00/0000:00:01.0",
  vf: "pci0000:00/0000:00:01.0/0000:01:00.0",
  other: "pci0000:00/0000:00:01.0/0000:01:00.1",
  badPort: "pci0000:00/0000:00:02.0",
  belowBadPort: "pci0000:00/0000:00:02.0/0000:02:00.0",
  nvme: "pci0000:00/0000:00:03.0",
} as const;

function pci(path: string, driver: string, extra: Partial<SimDevice> = {}): SimDevice {
  return {
    path,
    subsystem: "pci",
    driver,
    busSupport: true,
    driverSupport: true,
    uevent: { DRIVER: driver, PCI_SLOT_NAME: path.slice(path.lastIndexOf("/") + 1) },
    ...extra,
  };
}

/** Two supported VFs below a supported port, a port whose bus lacks support, an NVMe driver without. */
export function kernelTree(): SimTree {
  return {
    devices: [
      { path: DEV.root, busSupport: true, driverSupport: true, uevent: {} },
      pci(DEV.port, "pcieport"),
      pci(DEV.vf, "vfio-pci"),
      pci(DEV.other, "vfio-pci"),
      pci(DEV.badPort, "pcieport", { busSupport: false }),
      pci(DEV.belowBadPort, "vfio-pci"),
      pci(DEV.nvme, "nvme", { driverSupport: false }),
    ],
  };
}

/**
 * The kernel context for a simulator: its sysfs root, no debugfs, no mainline
 * device; the kernel's files through `libc`, as in production.
 */
export function simContext(sim: Sim, libc: () => Libc, watchInterval = 1000): KernelContext {
  return {
    fs: libcKernelFs(libc()),
    libc,
    sysfs: sim.root,
    debugfs: `${sim.root}/nonexistent-debugfs`,
    device: `${sim.root}/nonexistent-dev/liveupdate`,
    watchInterval,
  };
}

/** The kernel layer opened on a simulator, and its two parts. */
export interface SimKernel {
  kernel: Kernel;
  machine: StateMachine;
  devices: DeviceKernel;
}

/** The agent's kernel layer on `sim`, chosen by automatic selection. */
export async function openSimKernel(
  sim: Sim,
  libc: () => Libc,
  watchInterval = 1000,
): Promise<SimKernel> {
  const kernel: Kernel = await openKernel(simContext(sim, libc, watchInterval), "auto");
  return { kernel, machine: requireStateMachine(kernel), devices: requireDevices(kernel) };
}

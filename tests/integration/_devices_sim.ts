/**
 * Helpers of the device selection's integration tests: the simulated LUO kernel
 * (FUSE, tests/sim/harness.ts) with a device tree, that tree's udev database in
 * a temporary directory, and the agent's real layers pointed at both — the RFC
 * v1 backend, the libc KernelFs, the file record in a temporary state directory.
 *
 * @module
 */

import {
  fileOwnershipStore,
  type OwnershipStore,
  selectDevices,
  type Selection,
  SysfsResolver,
} from "../../agent/devices/mod.ts";
import { type KernelFs, type Libc, libcKernelFs, openLibc } from "../../agent/host/mod.ts";
import { type DeviceKernel, openKernel, requireDevices } from "../../agent/kernel/mod.ts";
import { type Sim, startSim } from "../sim/harness.ts";
import { type SimTree, writeUdevDb } from "../sim/tree.ts";

/** A simulator, its udev database and the agent's layers on them. */
export interface DevicesRig extends AsyncDisposable {
  sim: Sim;
  tree: SimTree;
  /** The udev database (`paths.udev_db`). */
  udev: string;
  /** The agent's state directory (`paths.state_dir`). */
  state: string;
  libc: Libc;
  fs: KernelFs;
  kernel: DeviceKernel;
  store: OwnershipStore;
  /** Selects with the tag "liveupdate" (and `match`). */
  select(match?: Record<string, string>): Selection;
  /** The driver and bus of a device, for refusal explanations. */
  identify(path: string): ReturnType<SysfsResolver["identity"]>;
  /** A device's flag as the simulated kernel has it. */
  flag(path: string, name?: "requested" | "preserved" | "reclaimed"): Promise<boolean>;
  /** The devices whose `requested` is 1, among `paths`. */
  requested(paths: readonly string[]): Promise<string[]>;
}

/** Starts the simulator with `tree` and writes its udev database. */
export async function startRig(tree: SimTree): Promise<DevicesRig> {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-devices-it-" });
  const libc = openLibc();
  let sim: Sim | undefined;
  try {
    sim = await startSim({ tree });
    const udev = `${dir}/udev`;
    await writeUdevDb(tree, udev);
    const fs = libcKernelFs(libc);
    const kernel = requireDevices(
      await openKernel({
        fs,
        libc: () => libc,
        sysfs: sim.root,
        debugfs: `${dir}/debug`,
        device: `${dir}/liveupdate`,
        watchInterval: 1000,
      }, "rfc-v1"),
    );
    const resolver = new SysfsResolver(fs, sim.root);
    const running = sim;
    const flag = async (path: string, name = "requested") =>
      (await Deno.readTextFile(running.device(path, `liveupdate/${name}`))) === "1\n";
    return {
      sim,
      tree,
      udev,
      state: `${dir}/state`,
      libc,
      fs,
      kernel,
      store: fileOwnershipStore(Deno, `${dir}/state`),
      select: (match) =>
        selectDevices({
          fs,
          udevDb: udev,
          sysfs: running.root,
          tag: "liveupdate",
          ...(match ? { match } : {}),
        }),
      identify: (path) => resolver.identity(path),
      flag,
      async requested(paths) {
        const result: string[] = [];
        for (const path of paths) if (await flag(path)) result.push(path);
        return result;
      },
      async [Symbol.asyncDispose]() {
        try {
          await running.stop();
        } finally {
          libc.close();
          await Deno.remove(dir, { recursive: true });
        }
      },
    };
  } catch (error) {
    await sim?.stop();
    libc.close();
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

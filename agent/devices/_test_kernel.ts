/**
 * An in-memory DeviceKernel for unit tests (test-only: the LUO kernel cannot run
 * here). It follows the RFC v1 rules on a device tree of the shared model
 * (tests/sim/tree.ts): `requested` accepts a change only in state normal (EINVAL
 * otherwise), writing the value it already has always succeeds, and writing 1
 * needs live-update support in the device and every ancestor (EINVAL otherwise).
 * Tests inject faults per device (errno sequences), vanish devices, and watch
 * every write. The integration tier runs the same code against the FUSE simulator.
 *
 * @module
 */

import type { SimTree } from "../../tests/sim/tree.ts";
import type { DeviceFlags, DeviceKernel, DevicePath, LuoState } from "../kernel/kernel.ts";
import { KernelError } from "../kernel/kernel_error.ts";

function fail(errno: string, path: DevicePath, operation: "read" | "request" | "unrequest") {
  return new KernelError(`${errno} on ${path} (test kernel)`, {
    errno,
    file: `/sys/devices/${path}/liveupdate/requested`,
    operation,
  });
}

/** The fake kernel. */
export class TreeKernel implements DeviceKernel {
  luoState: LuoState = "normal";
  readonly flags = new Map<DevicePath, DeviceFlags>();
  readonly parents = new Map<DevicePath, DevicePath | undefined>();
  readonly supported = new Map<DevicePath, boolean>();
  /** Every accepted change, in order. */
  readonly writes: [DevicePath, boolean][] = [];
  readonly vanished = new Set<DevicePath>();
  /** Errnos the next writes of a device fail with, in order. */
  readonly writeFaults = new Map<DevicePath, string[]>();
  /** An errno every read of a device fails with. */
  readonly readFaults = new Map<DevicePath, string>();
  /** Devices whose writes "succeed" but change nothing (for the read-back check). */
  readonly deaf = new Set<DevicePath>();
  /** Runs before each write that would change a flag. */
  beforeChange?: (path: DevicePath, value: boolean) => void;

  constructor(tree: SimTree) {
    const known = new Set<DevicePath>();
    for (const device of tree.devices) {
      let parent: DevicePath | undefined;
      for (
        let end = device.path.lastIndexOf("/");
        end > 0;
        end = device.path.lastIndexOf("/", end - 1)
      ) {
        if (known.has(device.path.slice(0, end))) {
          parent = device.path.slice(0, end);
          break;
        }
      }
      known.add(device.path);
      this.parents.set(device.path, parent);
      this.supported.set(device.path, device.busSupport && device.driverSupport);
      this.flags.set(device.path, { requested: false, preserved: false, reclaimed: false });
    }
  }

  /** Whether the device and every ancestor support live update. */
  possible(path: DevicePath): boolean {
    for (let at: DevicePath | undefined = path; at !== undefined; at = this.parents.get(at)) {
      if (!this.supported.get(at)) return false;
    }
    return true;
  }

  state(): Promise<LuoState> {
    return Promise.resolve(this.luoState);
  }

  readDevice(path: DevicePath): Promise<DeviceFlags> {
    const flags = this.flags.get(path);
    if (!flags || this.vanished.has(path)) return Promise.reject(fail("ENOENT", path, "read"));
    const fault = this.readFaults.get(path);
    if (fault) return Promise.reject(fail(fault, path, "read"));
    return Promise.resolve({ ...flags });
  }

  setRequested(path: DevicePath, value: boolean): Promise<void> {
    try {
      this.write(path, value);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The write, synchronously; throws the KernelError. */
  write(path: DevicePath, value: boolean): void {
    const operation = value ? "request" : "unrequest";
    const flags = this.flags.get(path);
    if (!flags || this.vanished.has(path)) throw fail("ENOENT", path, operation);
    const fault = this.writeFaults.get(path)?.shift();
    if (fault) throw fail(fault, path, operation);
    if (flags.requested === value) return;
    this.beforeChange?.(path, value);
    if (this.luoState !== "normal") throw fail("EINVAL", path, operation);
    if (value && !this.possible(path)) throw fail("EINVAL", path, operation);
    if (this.deaf.has(path)) return;
    flags.requested = value;
    this.writes.push([path, value]);
  }

  /** The paths whose `requested` is 1. */
  requested(): DevicePath[] {
    return [...this.flags].filter(([, flags]) => flags.requested).map(([path]) => path).sort();
  }
}

/**
 * The same kernel with the bulk fast path. `clobber` replaces the errno of every
 * failure the bulk calls report (as a garbage collection between an FFI call and
 * the errno read can), to check that callers confirm failures one by one. With
 * `hold`, it also keeps "files" open between a read and a write
 * (holdRequestedMany), counting those still open in `held`.
 */
export function withBulk(kernel: TreeKernel, clobber?: string, hold = false): DeviceKernel & {
  bulkCalls: number;
  held: number;
  heldWrites: number;
} {
  const result = {
    bulkCalls: 0,
    held: 0,
    heldWrites: 0,
    state: () => kernel.state(),
    readDevice: (path: DevicePath) => kernel.readDevice(path),
    setRequested: (path: DevicePath, value: boolean) => kernel.setRequested(path, value),
    readRequestedMany(paths: readonly DevicePath[]) {
      result.bulkCalls++;
      return Promise.all(paths.map(async (path) => {
        try {
          return (await kernel.readDevice(path)).requested;
        } catch (error) {
          return clobber ? fail(clobber, path, "read") : error as KernelError;
        }
      }));
    },
    setRequestedMany(paths: readonly DevicePath[], value: boolean) {
      result.bulkCalls++;
      return Promise.resolve(paths.map((path) => {
        try {
          kernel.write(path, value);
          // Like the RFC v1 fast path: read back on the same file.
          if (kernel.flags.get(path)?.requested !== value) {
            return new KernelError(`${path} reads back ${!value ? 1 : 0} (test kernel)`, {
              file: `/sys/devices/${path}/liveupdate/requested`,
              operation: value ? "request" : "unrequest",
            });
          }
          return null;
        } catch (error) {
          return clobber
            ? fail(clobber, path, value ? "request" : "unrequest")
            : error as KernelError;
        }
      }));
    },
    ...(hold ? { holdRequestedMany } : {}),
  };
  async function holdRequestedMany(paths: readonly DevicePath[], value: boolean) {
    const flags = await result.readRequestedMany(paths);
    const open = new Set<number>();
    flags.forEach((flag, index) => {
      if (flag === !value) open.add(index);
    });
    result.held += open.size;
    return {
      flags,
      async write(indexes: readonly number[]) {
        for (const index of indexes) {
          if (open.delete(index)) {
            result.held--;
            result.heldWrites++;
          }
        }
        return await result.setRequestedMany(indexes.map((index) => paths[index]!), value);
      },
      close() {
        result.held -= open.size;
        open.clear();
      },
    };
  }
  return result;
}

/**
 * Test fixtures of the device selection (test-only): a device tree from the shared
 * model (tests/sim/tree.ts) written as plain sysfs files and its udev database, in
 * a temporary directory that disposing removes; and both KernelFs implementations.
 *
 * @module
 */

import {
  type SimDevice,
  type SimTree,
  writePlainSysfs,
  writeUdevDb,
} from "../../tests/sim/tree.ts";
import { denoKernelFs } from "../host/deno_kernel_fs.ts";
import { type KernelFs, libcKernelFs, openLibc } from "../host/mod.ts";

/** A written tree. */
export interface Fixture extends AsyncDisposable {
  root: string;
  sysfs: string;
  udev: string;
  tree: SimTree;
  /** The sysfs directory of a device. */
  dir(path: string): string;
}

/** Writes `tree` below a new temporary directory. */
export async function makeFixture(tree: SimTree): Promise<Fixture> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-devices-" });
  const fixture: Fixture = {
    root,
    sysfs: `${root}/sys`,
    udev: `${root}/udev`,
    tree,
    dir: (path) => `${root}/sys/devices/${path}`,
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
  try {
    await writePlainSysfs(tree, fixture.sysfs);
    await writeUdevDb(tree, fixture.udev);
  } catch (error) {
    await Deno.remove(root, { recursive: true });
    throw error;
  }
  return fixture;
}

/** The device of `tree` at `path`. */
export function deviceAt(tree: SimTree, path: string): SimDevice {
  const device = tree.devices.find((candidate) => candidate.path === path);
  if (!device) throw new Error(`no device ${path} in the tree`);
  return device;
}

/** Runs `body` once with each KernelFs implementation (the libc one is closed after). */
export async function withEachFs(
  body: (fs: KernelFs, name: string) => void | Promise<void>,
): Promise<void> {
  await body(denoKernelFs, "deno");
  using libc = openLibc();
  await body(libcKernelFs(libc), "libc");
}

/** A KernelFs that counts the files each call touched (to check what a selection reads). */
export function countingFs(inner: KernelFs): KernelFs & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    kind: (path) => inner.kind(path),
    readDir: (path, limit) => inner.readDir(path, limit),
    read(path, buffer) {
      reads.push(path);
      return inner.read(path, buffer);
    },
    readLink: (path) => inner.readLink(path),
    stat: (path) => inner.stat(path),
    readFile(path, limit) {
      reads.push(path);
      return inner.readFile(path, limit);
    },
    write: (path, bytes) => inner.write(path, bytes),
    ...(inner.identity
      ? {
        identity: {
          list: (path, limit) => inner.identity!.list(path, limit),
          sameIdentities: (dir, names, identities) =>
            inner.identity!.sameIdentities(dir, names, identities),
          identify: (path, out) => inner.identity!.identify(path, out),
          readIdentified(path, buffer, out) {
            reads.push(path);
            return inner.identity!.readIdentified(path, buffer, out);
          },
        },
      }
      : {}),
  };
}

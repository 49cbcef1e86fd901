/**
 * The agent's record of the devices whose `requested` flag it set itself. The
 * kernel does not say who requested a device, and the agent must never clear a
 * request someone else made: this record is how it tells.
 *
 * Kept in `<paths.state_dir>/devices-requested.json`, replaced atomically (temp
 * file, fsync, rename, fsync of the directory), so a crash leaves either the old
 * or the new record. A reconcile writes it *before* touching the kernel (listing
 * the devices it is about to request) and again after, so the record may list a
 * device the agent never got to request, but never misses one it did. It survives
 * the kexec (it is on disk), which lets the new kernel's `devices` report name the
 * unit that should reclaim each device.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import type { DevicePath } from "../kernel/kernel.ts";
import { ensurePrivateDir, readRecordFile } from "../store/private_dir.ts";
import { OwnershipRecordError } from "./devices_error.ts";
import { isDevicePath } from "./sysfs_path.ts";

/** What the agent remembers about a device it requested. */
export interface OwnedDevice {
  /** The udev id it was selected by. */
  id: string;
  /** The unit that reclaims it (`LIVEUPDATE_UNIT`), if the rules named one. */
  unit?: string;
}

/** The devices the agent requested, by path. */
export type Owned = ReadonlyMap<DevicePath, OwnedDevice>;

/** Where the record lives. */
export interface OwnershipStore {
  /** Reads the record; an absent record is an empty one. */
  load(): Promise<Owned>;
  /** Replaces the record atomically. */
  save(owned: Owned): Promise<void>;
  /** A name for messages (the file). */
  readonly where: string;
}

/** The record's file name below the state directory. */
export const OWNERSHIP_FILE = "devices-requested.json";
const FORMAT_VERSION = 1;
/** The largest record read (100,000 devices take about 10 MB). */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** The record as JSON text: one device per line, sorted by path. */
export function ownedToJson(owned: Owned): string {
  return [...ownedJsonChunks(owned, Infinity)].join("");
}

/** The record's JSON text in pieces of at most `lines` devices (large records are written piecewise). */
export function* ownedJsonChunks(owned: Owned, lines = 1000): Generator<string> {
  const paths = [...owned.keys()].sort();
  yield `{"version":${FORMAT_VERSION},"devices":[`;
  for (let start = 0; start < paths.length; start += lines) {
    const chunk: string[] = [];
    for (const [offset, path] of paths.slice(start, start + lines).entries()) {
      const device = owned.get(path)!;
      const entry = { path, id: device.id, ...(device.unit ? { unit: device.unit } : {}) };
      chunk.push((start + offset === 0 ? "\n" : ",\n") + JSON.stringify(entry));
    }
    yield chunk.join("");
  }
  yield "\n]}\n";
}

/** Parses the record's JSON text, or says what is wrong with it. */
export function ownedFromJson(text: string): Map<DevicePath, OwnedDevice> | { problem: string } {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    return { problem: `it is not JSON (${(error as Error).message})` };
  }
  const doc = document as { version?: unknown; devices?: unknown };
  if (typeof doc !== "object" || doc === null) return { problem: "it is not a JSON object" };
  if (doc.version !== FORMAT_VERSION) {
    return {
      problem: `its version is ${
        JSON.stringify(doc.version)
      }, this agent reads version ${FORMAT_VERSION}`,
    };
  }
  if (!Array.isArray(doc.devices)) return { problem: 'it has no "devices" list' };
  const owned = new Map<DevicePath, OwnedDevice>();
  const devices = doc.devices as unknown[];
  for (let index = 0; index < devices.length; index++) {
    const entry = devices[index] as { path?: unknown; id?: unknown; unit?: unknown };
    if (
      typeof entry !== "object" || entry === null || typeof entry.path !== "string" ||
      !isDevicePath(entry.path) || typeof entry.id !== "string" ||
      (entry.unit !== undefined && typeof entry.unit !== "string")
    ) {
      return {
        problem: `device entry ${index} is not { path, id, unit? } with a clean device path`,
      };
    }
    owned.set(
      entry.path,
      entry.unit === undefined ? { id: entry.id } : { id: entry.id, unit: entry.unit as string },
    );
  }
  return owned;
}

/**
 * The record in `<stateDir>/devices-requested.json`, through the host's file
 * system. Needs read and write access to `stateDir`.
 */
export function fileOwnershipStore(fs: FileSystem, stateDir: string): OwnershipStore {
  const file = `${stateDir}/${OWNERSHIP_FILE}`;
  return {
    where: file,
    async load() {
      // A regular file of bounded size only: not a FIFO, a symlink or gigabytes.
      const read = await readRecordFile(fs, file, MAX_RECORD_BYTES);
      if ("missing" in read) return new Map();
      if ("problem" in read) {
        throw new OwnershipRecordError(
          `Cannot read the record of requested devices "${file}": ${read.problem}. It lists ` +
            "the devices whose requested flag the agent set; move it aside only after checking " +
            "them (liveupdate-agent devices --all).",
          file,
        );
      }
      const owned = ownedFromJson(read.text);
      if (!("problem" in owned)) return owned;
      throw new OwnershipRecordError(
        `The record of requested devices "${file}" is unreadable: ${owned.problem}. It lists ` +
          "the devices whose requested flag the agent set; move it aside only after checking " +
          "them (liveupdate-agent devices --all).",
        file,
      );
    },
    async save(owned) {
      // Only clean device paths (a record it could not read back must not be written,
      // and an undo journal on disk is input like any other).
      for (const path of owned.keys()) {
        if (!isDevicePath(path)) {
          throw new OwnershipRecordError(
            `Refusing to record the device path "${path}" in "${file}": it is not a path ` +
              "below <sysfs>/devices. The journal that named it is damaged; check the attempt " +
              "record and 'liveupdate-agent devices --all'.",
            file,
          );
        }
      }
      try {
        await writeAtomically(fs, stateDir, file, ownedJsonChunks(owned));
      } catch (error) {
        throw new OwnershipRecordError(
          `Cannot write the record of requested devices "${file}": ${(error as Error).message}. ` +
            `Check that "${stateDir}" is writable and has space.`,
          file,
          { cause: error },
        );
      }
    },
  };
}

async function writeAtomically(
  fs: FileSystem,
  dir: string,
  file: string,
  chunks: Iterable<string>,
): Promise<void> {
  await ensurePrivateDir(fs, dir, "state directory (paths.state_dir)");
  const temp = `${file}.tmp-${crypto.randomUUID()}`;
  try {
    const handle = await fs.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      const encoder = new TextEncoder();
      for (const chunk of chunks) {
        const bytes = encoder.encode(chunk);
        let offset = 0;
        while (offset < bytes.length) offset += await handle.write(bytes.subarray(offset));
      }
      await handle.sync();
    } finally {
      handle.close();
    }
    await fs.rename(temp, file);
  } catch (error) {
    await fs.remove(temp).catch(() => {});
    throw error;
  }
  const directory = await fs.open(dir, { read: true });
  try {
    await directory.sync();
  } finally {
    directory.close();
  }
}

/** A record kept in memory (tests, dry runs). */
export function memoryOwnershipStore(initial: Owned = new Map()): OwnershipStore & {
  current(): Owned;
  saves: number;
} {
  let current: Owned = new Map(initial);
  const store = {
    where: "(memory)",
    saves: 0,
    load: () => Promise.resolve(new Map(current)),
    save(owned: Owned) {
      current = new Map(owned);
      store.saves++;
      return Promise.resolve();
    },
    current: () => current,
  };
  return store;
}

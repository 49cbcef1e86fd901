/**
 * What the device selection reads from the host: the udev database and sysfs
 * links. Synchronous on purpose: selecting 10,000 devices means tens of thousands
 * of small reads, and Deno's async file operations cost about 2.5 times as much
 * per call as the synchronous ones (measured on tmpfs: 10,000 data files read in
 * ~85 ms synchronously, ~200 ms asynchronously). A selection never waits on
 * anything slow: /run/udev is tmpfs and sysfs is in memory.
 *
 * `agent/cli` passes `Deno` itself; tests pass `Deno` or a wrapper that counts
 * or breaks calls.
 *
 * @module
 */

/** The synchronous file-system calls the device selection makes. */
export type DeviceFs = Pick<
  typeof Deno,
  "readDirSync" | "openSync" | "readLinkSync" | "lstatSync"
>;

/** The errno-style code of a file-system error ("ENOENT"), if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (error instanceof Deno.errors.NotFound) return "ENOENT";
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** What {@link readBounded} found. */
export type BoundedRead =
  | { kind: "ok"; bytes: Uint8Array }
  | { kind: "missing" }
  | { kind: "too-big" };

/**
 * Reads the file at `path` into `buffer` (reused between calls) and returns a view
 * of its bytes; "too-big" when it holds more than `buffer.length - 1` bytes,
 * "missing" when it does not exist. Other errors are thrown.
 *
 * One read call: a short read of a regular file (tmpfs, sysfs attributes) is its
 * end, so the usual extra read that returns 0 is saved — a selection reads tens
 * of thousands of these files.
 */
export function readBounded(fs: DeviceFs, path: string, buffer: Uint8Array): BoundedRead {
  let file: Deno.FsFile;
  try {
    file = fs.openSync(path, { read: true });
  } catch (error) {
    if (errorCode(error) === "ENOENT") return { kind: "missing" };
    throw error;
  }
  try {
    const count = file.readSync(buffer) ?? 0;
    if (count >= buffer.length) return { kind: "too-big" };
    return { kind: "ok", bytes: buffer.subarray(0, count) };
  } finally {
    file.close();
  }
}

/**
 * The agent's own directories and small files, kept where they are meant to be:
 * a state or runtime directory must be a real directory (not a symlink that
 * would carry the agent's writes — and a chmod — somewhere else), mode 0700;
 * a record is read only when it is a regular file of bounded size (not a FIFO
 * that blocks the read, not a symlink to a secret, not gigabytes).
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import { fileErrorReason, StoreError } from "./store_error.ts";

/**
 * Makes `dir` exist as a real directory with mode 0700 (creating missing parents
 * with their default mode). Throws {@link StoreError} naming `what` when `dir` is
 * a symlink or something other than a directory: the agent never follows one
 * there, so a planted link cannot redirect its writes. Needs read and write
 * permission on `dir`.
 */
export async function ensurePrivateDir(fs: FileSystem, dir: string, what: string): Promise<void> {
  let info: Deno.FileInfo | undefined;
  try {
    info = await fs.lstat(dir);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new StoreError(
        `Cannot look at the ${what} "${dir}": ${fileErrorReason(error)}.`,
        dir,
        { cause: error },
      );
    }
  }
  if (info?.isSymlink) {
    throw new StoreError(
      `The ${what} "${dir}" is a symlink; the agent keeps its files only in a real directory ` +
        "it owns. Replace the link with a directory (or point the setting at the target).",
      dir,
    );
  }
  if (info && !info.isDirectory) {
    throw new StoreError(
      `The ${what} "${dir}" is not a directory. Remove it or fix the setting.`,
      dir,
    );
  }
  try {
    if (!info) await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chmod(dir, 0o700);
  } catch (error) {
    throw new StoreError(
      `Cannot create the ${what} "${dir}": ${fileErrorReason(error)}. Check the setting and ` +
        "its permissions.",
      dir,
      { cause: error },
    );
  }
}

/** What {@link readRecordFile} found. */
export type RecordRead =
  | { text: string }
  | { missing: true }
  | { problem: string };

/**
 * Reads the record file `path` as text when it is a regular file (not a symlink,
 * FIFO, socket, device or directory) of at most `limit` bytes; otherwise says
 * why not. A missing file is `{ missing: true }`. Needs read permission.
 */
export async function readRecordFile(
  fs: FileSystem,
  path: string,
  limit: number,
): Promise<RecordRead> {
  let info: Deno.FileInfo;
  try {
    info = await fs.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { missing: true };
    return { problem: `it cannot be read (${fileErrorReason(error)})` };
  }
  if (info.isSymlink) return { problem: "it is a symlink, not a record the agent wrote" };
  if (!info.isFile) {
    return {
      problem: info.isDirectory
        ? "it is a directory, not a record"
        : "it is not a regular file (a FIFO, socket or device node)",
    };
  }
  if (info.size > limit) return { problem: `it is larger than ${limit} bytes` };
  try {
    const bytes = await fs.readFile(path);
    if (bytes.length > limit) return { problem: `it is larger than ${limit} bytes` };
    return { text: new TextDecoder().decode(bytes) };
  } catch (error) {
    return { problem: `it cannot be read (${fileErrorReason(error)})` };
  }
}

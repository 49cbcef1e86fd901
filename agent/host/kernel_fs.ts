/**
 * The kernel's files — everything under sysfs, procfs and debugfs, device nodes —
 * and the udev database, behind one small synchronous interface.
 *
 * Why not Deno's file API: Deno 2.9 refuses every path under /sys, /proc and /dev
 * ("NotCapable: Requires all access") unless the process runs with `--allow-all`,
 * whatever `--allow-read`/`--allow-write` say (denoland/deno#27564). Calls through
 * FFI are not path-checked by Deno, so in production these files are reached
 * through libc ({@link libcKernelFs} in `libc_kernel_fs.ts`) and the agent's
 * sandbox for them is the service unit's (ReadWritePaths=, ProtectKernelTunables=…),
 * not Deno's permission flags. `deno_kernel_fs.ts` has an implementation over
 * Deno's synchronous API for unit tests on ordinary directories.
 *
 * Synchronous, and with errors as values (errno names), on purpose: selecting
 * 10,000 devices means tens of thousands of small reads, a missing file is an
 * expected answer there (a vanished device), and the kernel layer turns each errno
 * into a precise KernelError (EINVAL, EBUSY, ENODEV, EAGAIN, ENOENT, EACCES …).
 * A write to a sysfs attribute runs the kernel's callbacks (a prepare may take a
 * while) and blocks the event loop until they return; nothing else of the agent
 * runs meanwhile anyway (the state watcher's poll waits on its own thread).
 *
 * @module
 */

import type { IdentityFs } from "./file_identity.ts";

/** A failed call: the errno name ("ENOENT", "EINVAL"…). */
export interface FsFailure {
  errno: string;
}

/** One directory entry. */
export interface DirEntry {
  name: string;
  /** A regular file (not a directory, symlink or anything else). */
  isFile: boolean;
  /** A directory (not a symlink to one). */
  isDirectory: boolean;
}

/** What is at a path, without following a symlink there. */
export type PathKind = "directory" | "symlink" | "file" | "missing";
// ("file": anything else that exists — a regular file, FIFO, device node…)

/** What {@link KernelFs.stat} tells about a path (symlinks followed). */
export interface FileStat {
  type: "file" | "directory" | "char-device" | "other";
  /** The size the file system reports (sysfs attributes say 4096, whatever they hold). */
  size: number;
}

/** The synchronous calls on the kernel's files. */
export interface KernelFs {
  /**
   * What is at `path` (a final symlink is not followed); "missing" when nothing
   * is, or it cannot be looked at. The common answer ("directory") costs one call
   * and does not depend on errno.
   */
  kind(path: string): PathKind;
  /** What `path` is, following symlinks, or the failure ("ENOENT" when nothing is there). */
  stat(path: string): FileStat | FsFailure;
  /** The entries of directory `path`, or the failure ("E2BIG": more than `limit` entries). */
  readDir(path: string, limit?: number): DirEntry[] | FsFailure;
  /**
   * Reads the start of file `path` into `buffer` with one read call and returns the
   * byte count, or the failure. One call: a short read of a regular file (tmpfs,
   * sysfs attributes) is its end, and the extra read that would return 0 is saved.
   * A count equal to `buffer.length` means the file may be longer.
   */
  read(path: string, buffer: Uint8Array<ArrayBuffer>, options?: ReadOptions): number | FsFailure;
  /**
   * Reads file `path` to its end (procfs files, debugfs blobs), or the failure;
   * "EFBIG" when it holds more than `limit` bytes.
   */
  readFile(path: string, limit: number): Uint8Array<ArrayBuffer> | FsFailure;
  /** The target of symlink `path`, or the failure ("EINVAL": it exists and is no symlink). */
  readLink(path: string): string | FsFailure;
  /**
   * Writes `bytes` to the existing file `path` with one write call and returns the
   * count the kernel accepted, or the failure (the errno of the open or the write:
   * a sysfs attribute answers a refused value with the kernel's errno). Never
   * creates or truncates: a missing attribute fails with ENOENT, it does not
   * become a file. With `options.beneath`, `path` must lie below that directory
   * and is opened there with no symlink and no `..` on the way (ELOOP, EXDEV
   * otherwise; see `beneath.ts`).
   */
  write(path: string, bytes: Uint8Array<ArrayBuffer>, options?: WriteOptions): number | FsFailure;
  /** File identities, for the device selection's cache; without them it is not used. */
  identity?: IdentityFs;
}

/** Options of {@link KernelFs.read}. */
export interface ReadOptions {
  /** Fail with ELOOP when `path` itself is a symlink (files udev writes are never one). */
  noFollow?: boolean;
}

/** Options of {@link KernelFs.write}. */
export interface WriteOptions {
  /** A directory `path` must stay below, through real directories only. */
  beneath?: string;
}

/**
 * `path` relative to `beneath` when it lies below it, else undefined
 * ("/sys/kernel/liveupdate/prepare" below "/sys" is "kernel/liveupdate/prepare").
 */
export function relativeBelow(path: string, beneath: string): string | undefined {
  const root = beneath.endsWith("/") ? beneath : `${beneath}/`;
  return path.startsWith(root) && path.length > root.length ? path.slice(root.length) : undefined;
}

/** Whether `result` is a failure. */
export function failed(result: unknown): result is FsFailure {
  return typeof result === "object" && result !== null && "errno" in result &&
    !Array.isArray(result) && !ArrayBuffer.isView(result);
}

/** What {@link readBounded} found. */
export type BoundedRead =
  | { kind: "ok"; bytes: Uint8Array }
  | { kind: "missing" }
  | { kind: "too-big" }
  | { kind: "failed"; errno: string };

/**
 * Reads file `path` into `buffer` (reused between calls) and returns a view of its
 * bytes; "too-big" when it holds `buffer.length` bytes or more (so the largest
 * accepted file is one byte shorter than the buffer), "missing" when it does not
 * exist.
 */
export function readBounded(
  fs: KernelFs,
  path: string,
  buffer: Uint8Array<ArrayBuffer>,
  options?: ReadOptions,
): BoundedRead {
  return boundedResult(fs.read(path, buffer, options), buffer);
}

/**
 * What a read of at most `buffer.length` bytes into `buffer` found, as
 * {@link readBounded} reports it: the count read, or the failure.
 */
export function boundedResult(
  count: number | FsFailure,
  buffer: Uint8Array<ArrayBuffer>,
): BoundedRead {
  if (failed(count)) {
    return count.errno === "ENOENT" || count.errno === "ENOTDIR"
      ? { kind: "missing" }
      : { kind: "failed", errno: count.errno };
  }
  if (count >= buffer.length) return { kind: "too-big" };
  return { kind: "ok", bytes: buffer.subarray(0, count) };
}

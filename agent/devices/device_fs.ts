/**
 * What the device selection reads from the host: directory listings, small files
 * (udev data, sysfs attributes) and symlinks. Synchronous, and with errors as
 * values, on purpose: selecting 10,000 devices means tens of thousands of small
 * reads, and per call Deno's async file operations cost about 2.5 times its
 * synchronous ones, which in turn cost about twice a direct system call through
 * FFI (measured on tmpfs, 10,000 devices: ~200 ms through Deno's synchronous API,
 * ~100 ms through libc). A missing file is an expected answer here (a vanished
 * device, a grouping directory), not an exception.
 *
 * Two implementations: {@link libcDeviceFs} (production: open/read/readlink
 * through the libc binding; also never blocks on a FIFO) and {@link denoDeviceFs}
 * (Deno's synchronous API; no FFI needed). Both are tested against the same files.
 *
 * @module
 */

import { errnoName, type Libc } from "../host/mod.ts";
import { denoIdentityFs, type IdentityFs, libcIdentityFs } from "./file_identity.ts";

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

/** The synchronous file-system calls of the device selection. */
export interface DeviceFs {
  /**
   * What is at `path` (a final symlink is not followed); "missing" when nothing
   * is, or it cannot be looked at. The common answer ("directory") costs one call
   * and does not depend on errno.
   */
  kind(path: string): PathKind;
  /** The entries of directory `path`, or the failure ("E2BIG": more than `limit` entries). */
  readDir(path: string, limit?: number): DirEntry[] | FsFailure;
  /**
   * Reads the start of file `path` into `buffer` with one read call and returns the
   * byte count, or the failure. One call: a short read of a regular file (tmpfs,
   * sysfs attributes) is its end, and the extra read that would return 0 is saved.
   * A count equal to `buffer.length` means the file may be longer.
   */
  read(path: string, buffer: Uint8Array<ArrayBuffer>): number | FsFailure;
  /** The target of symlink `path`, or the failure ("EINVAL": it exists and is no symlink). */
  readLink(path: string): string | FsFailure;
  /** File identities, for the selection cache (file_identity.ts); without them it is not used. */
  identity?: IdentityFs;
}

/** Whether `result` is a failure. */
export function failed(result: unknown): result is FsFailure {
  return typeof result === "object" && result !== null && "errno" in result &&
    !Array.isArray(result);
}

/** The errno name of a thrown file-system error ("EIO" when it carries none). */
export function errorCode(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "ENOENT";
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : "EIO";
}

/** The device selection's calls through Deno's synchronous file API. Needs `--allow-read`. */
export const denoDeviceFs: DeviceFs = {
  kind(path) {
    try {
      const info = Deno.lstatSync(path);
      return info.isDirectory ? "directory" : info.isSymlink ? "symlink" : "file";
    } catch {
      return "missing";
    }
  },
  readDir(path, limit = Infinity) {
    try {
      const entries: DirEntry[] = [];
      for (const entry of Deno.readDirSync(path)) {
        if (entries.length >= limit) return { errno: "E2BIG" };
        entries.push(entry);
      }
      return entries;
    } catch (error) {
      return { errno: errorCode(error) };
    }
  },
  read(path, buffer) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch (error) {
      return { errno: errorCode(error) };
    }
    try {
      return file.readSync(buffer) ?? 0;
    } catch (error) {
      return { errno: errorCode(error) };
    } finally {
      file.close();
    }
  },
  readLink(path) {
    try {
      return Deno.readLinkSync(path);
    } catch (error) {
      return { errno: errorCode(error) };
    }
  },
  identity: denoIdentityFs,
};

const O_RDONLY = 0;
const O_DIRECTORY = 0o200000;
const O_NONBLOCK = 0o4000;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const PATH_MAX = 4096;
const DENTS_SIZE = 64 * 1024;
// struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[].
const DT_UNKNOWN = 0;
const DT_DIR = 4;
const DT_REG = 8;
// statx(2): the same struct layout on every architecture; stx_mode is a u16 at 28.
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_TYPE = 1;
const STATX_SIZE = 256;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/**
 * The device selection's calls straight through libc (open, read, readlink,
 * close, getdents64, statx). Structures are read as little-endian (x86-64, arm64). Files are opened non-blocking, so a FIFO planted where a
 * data file should be cannot hang the agent. Listing a directory of 10,000 tag
 * entries this way allocates a string per name and nothing else (Deno's readDir
 * builds an object per entry, about 12 MB of peak memory for 10,000). Needs
 * `--allow-ffi`.
 *
 * errno is read right after a failed call, but V8 may run between the call and
 * the read (a garbage collection waiting on a futex sets errno to EAGAIN), so
 * nothing here decides on errno alone: {@link DeviceFs.kind} answers by success
 * or failure (statx), and the errno of a failure only words a message.
 */
export function libcDeviceFs(libc: Libc): DeviceFs {
  const { open, read, close, readlink, getdents64, statx } = libc.symbols;
  const stat = new Uint8Array(STATX_SIZE);
  const statView = new DataView(stat.buffer);
  const link = new Uint8Array(PATH_MAX);
  const LINK_SIZE = BigInt(PATH_MAX);
  // The size argument as a bigint, remembered (one buffer size is used over and over).
  let lastSize = 0;
  let lastBig = 0n;
  const size = (length: number) => {
    if (length !== lastSize) lastBig = BigInt(lastSize = length);
    return lastBig;
  };
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  // One buffer for every path argument: no allocation per call.
  const pathBuffer = new Uint8Array(PATH_MAX);
  const cPath = (path: string): Uint8Array<ArrayBuffer> | undefined => {
    const { read, written } = encoder.encodeInto(path, pathBuffer);
    if (read < path.length || written >= PATH_MAX || path.includes("\0")) return undefined;
    pathBuffer[written] = 0;
    return pathBuffer;
  };
  let dents: Uint8Array<ArrayBuffer> | undefined;
  return {
    kind(path) {
      const name = cPath(path);
      if (!name) return "missing";
      if (statx(AT_FDCWD, name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, stat) !== 0) return "missing";
      const type = statView.getUint16(28, true) & S_IFMT;
      return type === S_IFDIR ? "directory" : type === S_IFLNK ? "symlink" : "file";
    },
    readDir(path, limit = Infinity) {
      const name = cPath(path);
      if (!name) return { errno: "ENAMETOOLONG" };
      const fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
      if (fd < 0) return { errno: errnoName(libc.errno()) };
      dents ??= new Uint8Array(DENTS_SIZE);
      const view = new DataView(dents.buffer);
      const entries: DirEntry[] = [];
      try {
        for (;;) {
          const count = Number(getdents64(fd, dents, BigInt(DENTS_SIZE)));
          if (count < 0) return { errno: errnoName(libc.errno()) };
          if (count === 0) break;
          for (let offset = 0; offset < count;) {
            const length = view.getUint16(offset + 16, true);
            const type = dents[offset + 18]!;
            const end = dents.indexOf(0, offset + 19);
            const entry = decoder.decode(dents.subarray(offset + 19, end));
            offset += length;
            if (entry === "." || entry === "..") continue;
            // A file system that does not fill in d_type: ask Deno, which looks at each.
            if (type === DT_UNKNOWN) return denoDeviceFs.readDir(path, limit);
            if (entries.length >= limit) return { errno: "E2BIG" };
            entries.push({ name: entry, isFile: type === DT_REG, isDirectory: type === DT_DIR });
          }
        }
      } finally {
        close(fd);
      }
      return entries;
    },
    read(path, buffer) {
      const name = cPath(path);
      if (!name) return { errno: "ENAMETOOLONG" };
      const fd = open(name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
      if (fd < 0) return { errno: errnoName(libc.errno()) };
      const count = Number(read(fd, buffer, size(buffer.length)));
      const failure = count < 0 ? { errno: errnoName(libc.errno()) } : undefined;
      close(fd);
      return failure ?? count;
    },
    readLink(path) {
      const name = cPath(path);
      if (!name) return { errno: "ENAMETOOLONG" };
      const count = Number(readlink(name, link, LINK_SIZE));
      if (count < 0) return { errno: errnoName(libc.errno()) };
      if (count >= link.length) return { errno: "ENAMETOOLONG" };
      return decoder.decode(link.subarray(0, count));
    },
    identity: libcIdentityFs(libc),
  };
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
  fs: DeviceFs,
  path: string,
  buffer: Uint8Array<ArrayBuffer>,
): BoundedRead {
  const count = fs.read(path, buffer);
  if (failed(count)) {
    return count.errno === "ENOENT" || count.errno === "ENOTDIR"
      ? { kind: "missing" }
      : { kind: "failed", errno: count.errno };
  }
  if (count >= buffer.length) return { kind: "too-big" };
  return { kind: "ok", bytes: buffer.subarray(0, count) };
}

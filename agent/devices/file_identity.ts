/**
 * Which version of a file the agent looked at: device, inode, size, modification
 * and change time, as statx(2) tells them. The selection cache
 * (`selection_cache.ts`) keeps, per udev data file, the identity of the version it
 * read, and trusts what it worked out from it only while the file still has that
 * identity.
 *
 * Why this is enough: systemd-udevd replaces a data file (a new file renamed over
 * the old: a new inode) every time it processes an event for the device, and
 * anything else that changes the file in place moves its change time, which no
 * one can set back (only a step of the system clock can). The one gap is a change
 * within the same clock tick as the version read (file times are coarse); the cache
 * closes it by not trusting versions changed shortly before it read them (see
 * {@link isSettled}).
 *
 * Two implementations beside the DeviceFs ones: {@link libcIdentityFs} (statx
 * through libc, nanosecond times) and {@link denoIdentityFs} (Deno's stat, millisecond
 * times; tests and hosts without FFI).
 *
 * @module
 */

import { errnoName, type Libc } from "../host/mod.ts";
// Type only: device_fs.ts imports this module.
import type { FsFailure } from "./device_fs.ts";

/** The numbers of a file version (see {@link IDENTITY_LENGTH} for the layout). */
export type FileIdentity = Float64Array<ArrayBuffer>;

/**
 * Entries of a {@link FileIdentity}: device major, device minor, inode (high and
 * low 32 bits), size, modification time (seconds, nanoseconds), change time
 * (seconds, nanoseconds).
 */
export const IDENTITY_LENGTH = 9;

/** A new, empty identity to fill. */
export function newIdentity(): FileIdentity {
  return new Float64Array(IDENTITY_LENGTH);
}

/** Whether two identities name the same version of a file. */
export function sameIdentity(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  for (let i = 0; i < IDENTITY_LENGTH; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** How long before a run a file must have last changed for the cache to trust it. */
export const SETTLE_MS = 2000;

/**
 * Whether the version `identity` names last changed at least `settleMs`
 * ({@link SETTLE_MS}) before `startedMs` (milliseconds since the epoch, taken
 * before the file was read). A later change of a settled file always gets a later change time, so it
 * cannot hide behind the coarse clock; a change time in the future (a clock step
 * backwards) is not settled either.
 */
export function isSettled(
  identity: ArrayLike<number>,
  startedMs: number,
  settleMs = SETTLE_MS,
): boolean {
  const limit = startedMs - settleMs;
  const modified = identity[5]! * 1000 + identity[6]! / 1e6;
  const changed = identity[7]! * 1000 + identity[8]! / 1e6;
  return modified < limit && changed < limit;
}

/** File identities, beside a {@link DeviceFs} (see `DeviceFs.identity`). */
export interface IdentityFs {
  /**
   * Fills `out` with the identity of the regular file at `path` (a final symlink is
   * followed, as reading it would); false when there is none (missing, not a
   * regular file, or it cannot be looked at).
   */
  identify(path: string, out: FileIdentity): boolean;
  /**
   * Reads file `path` like `DeviceFs.read` (one read call into `buffer`) and fills
   * `out` with the identity of the file read, taken on the open file *before*
   * reading: a change during or after the read gives the file another identity.
   * `out[0]` is NaN when what was read is not a regular file.
   */
  readIdentified(
    path: string,
    buffer: Uint8Array<ArrayBuffer>,
    out: FileIdentity,
  ): number | FsFailure;
}

const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const PATH_MAX = 4096;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
// STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME.
const STATX_MASK = 0x1 | 0x2 | 0x100 | 0x200 | 0x40 | 0x80;
const STATX_SIZE = 256;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/**
 * Identities through libc's statx(2) (the struct's layout is the same on every
 * architecture; read as little-endian: x86-64, arm64). Needs `--allow-ffi`.
 */
export function libcIdentityFs(libc: Libc): IdentityFs {
  const { open, read, close, statx } = libc.symbols;
  const stat = new Uint8Array(STATX_SIZE);
  const view = new DataView(stat.buffer);
  const empty = new Uint8Array(1);
  const encoder = new TextEncoder();
  const pathBuffer = new Uint8Array(PATH_MAX);
  const cPath = (path: string): Uint8Array<ArrayBuffer> | undefined => {
    const { read, written } = encoder.encodeInto(path, pathBuffer);
    if (read < path.length || written >= PATH_MAX || path.includes("\0")) return undefined;
    pathBuffer[written] = 0;
    return pathBuffer;
  };
  let lastSize = 0;
  let lastBig = 0n;
  const size = (length: number) => {
    if (length !== lastSize) lastBig = BigInt(lastSize = length);
    return lastBig;
  };
  /** Copies the identity from `stat`; false when it is not a regular file. */
  const fill = (out: FileIdentity): boolean => {
    if ((view.getUint16(28, true) & S_IFMT) !== S_IFREG) return false;
    out[0] = view.getUint32(136, true); // stx_dev_major
    out[1] = view.getUint32(140, true); // stx_dev_minor
    out[2] = view.getUint32(36, true); // stx_ino, high half
    out[3] = view.getUint32(32, true); // stx_ino, low half
    out[4] = view.getUint32(40, true) + view.getUint32(44, true) * 2 ** 32; // stx_size
    out[5] = view.getUint32(112, true) + view.getInt32(116, true) * 2 ** 32; // stx_mtime
    out[6] = view.getUint32(120, true);
    out[7] = view.getUint32(96, true) + view.getInt32(100, true) * 2 ** 32; // stx_ctime
    out[8] = view.getUint32(104, true);
    return true;
  };
  return {
    identify(path, out) {
      const name = cPath(path);
      if (!name) return false;
      if (statx(AT_FDCWD, name, 0, STATX_MASK, stat) !== 0) return false;
      return fill(out);
    },
    readIdentified(path, buffer, out) {
      const name = cPath(path);
      if (!name) return { errno: "ENAMETOOLONG" };
      const fd = open(name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
      if (fd < 0) return { errno: errnoName(libc.errno()) };
      if (statx(fd, empty, AT_EMPTY_PATH, STATX_MASK, stat) !== 0 || !fill(out)) out[0] = NaN;
      const count = Number(read(fd, buffer, size(buffer.length)));
      const failure = count < 0 ? { errno: errnoName(libc.errno()) } : undefined;
      close(fd);
      return failure ?? count;
    },
  };
}

function fromInfo(info: Deno.FileInfo, out: FileIdentity): boolean {
  if (!info.isFile || info.ino === null || info.mtime === null || info.ctime === null) {
    return false;
  }
  const modified = info.mtime.getTime();
  const changed = info.ctime.getTime();
  out[0] = info.dev;
  out[1] = 0;
  out[2] = 0;
  out[3] = info.ino;
  out[4] = info.size;
  out[5] = Math.floor(modified / 1000);
  out[6] = (modified % 1000) * 1e6;
  out[7] = Math.floor(changed / 1000);
  out[8] = (changed % 1000) * 1e6;
  return true;
}

/** Identities through Deno's synchronous stat (millisecond times). Needs `--allow-read`. */
export const denoIdentityFs: IdentityFs = {
  identify(path, out) {
    try {
      return fromInfo(Deno.statSync(path), out);
    } catch {
      return false;
    }
  },
  readIdentified(path, buffer, out) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch (error) {
      return { errno: errnoOfError(error) };
    }
    try {
      if (!fromInfo(file.statSync(), out)) out[0] = NaN;
      return file.readSync(buffer) ?? 0;
    } catch (error) {
      return { errno: errnoOfError(error) };
    } finally {
      file.close();
    }
  },
};

/** The errno name of a thrown file-system error ("EIO" when it carries none). */
function errnoOfError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "ENOENT";
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : "EIO";
}

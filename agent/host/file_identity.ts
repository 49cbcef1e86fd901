/**
 * Which version of a file the agent looked at: device, inode, size, modification
 * and change time, as statx(2) tells them. The selection cache
 * (agent/devices/selection_cache.ts) keeps, per udev data file, the identity of the version it
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
 * Two implementations beside the KernelFs ones: {@link libcIdentityFs} (statx
 * through libc, nanosecond times) and {@link denoIdentityFs} (Deno's stat, millisecond
 * times; tests and hosts without FFI).
 *
 * @module
 */

import { errnoName } from "./errno.ts";
import type { Libc } from "./libc.ts";
// Types only: kernel_fs.ts imports this module.
import type { DirEntry, FsFailure } from "./kernel_fs.ts";

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

/** A directory's entries as listed once (see {@link IdentityFs.list}). */
export interface Listing {
  /**
   * Equal for two listings only if they hold the same entries (names and kinds):
   * a cache can tell an unchanged directory by it without looking at each entry.
   */
  readonly key: string;
  /** The entries (worked out from the same listing as the key). */
  entries(): DirEntry[];
}

/** File identities, beside a {@link DeviceFs} (see `DeviceFs.identity`). */
export interface IdentityFs {
  /**
   * Lists directory `path` (at most `limit` entries: else "E2BIG"), with a key
   * that tells whether it changed.
   */
  list(path: string, limit: number): Listing | FsFailure;
  /**
   * Whether every file `names[i]` in directory `dir` still has the identity at
   * `identities[i * IDENTITY_LENGTH]`: false at the first that does not (or cannot
   * be looked at). One statx per file, relative to the directory.
   */
  sameIdentities(dir: string, names: readonly string[], identities: ArrayLike<number>): boolean;
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
   * `out[0]` is NaN when what was read is not a regular file. A final symlink is
   * not followed: it fails with ELOOP (udev writes plain files).
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
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const PATH_MAX = 4096;
const O_DIRECTORY = 0o200000;
const O_PATH = 0o10000000;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const AT_SYMLINK_NOFOLLOW = 0x100;
const DENTS_SIZE = 64 * 1024;
// struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[].
const DT_UNKNOWN = 0;
const DT_DIR = 4;
const DT_REG = 8;
const S_IFDIR = 0o040000;
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
  const { open, read, close, statx, getdents64 } = libc.symbols;
  const decoder = new TextDecoder();
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
  /** Whether `stat` holds a regular file with the identity at `identities[at]`. */
  const same = (identities: ArrayLike<number>, at: number): boolean =>
    (view.getUint16(28, true) & S_IFMT) === S_IFREG &&
    view.getUint32(136, true) === identities[at] &&
    view.getUint32(140, true) === identities[at + 1] &&
    view.getUint32(36, true) === identities[at + 2] &&
    view.getUint32(32, true) === identities[at + 3] &&
    view.getUint32(40, true) + view.getUint32(44, true) * 2 ** 32 === identities[at + 4] &&
    view.getUint32(112, true) + view.getInt32(116, true) * 2 ** 32 === identities[at + 5] &&
    view.getUint32(120, true) === identities[at + 6] &&
    view.getUint32(96, true) + view.getInt32(100, true) * 2 ** 32 === identities[at + 7] &&
    view.getUint32(104, true) === identities[at + 8];
  /** The entries of raw getdents64 `chunks` of directory `dir`. */
  const parse = (dir: string, chunks: readonly Uint8Array<ArrayBuffer>[]): DirEntry[] => {
    const entries: DirEntry[] = [];
    for (const chunk of chunks) {
      const chunkView = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (let offset = 0; offset < chunk.length;) {
        const length = chunkView.getUint16(offset + 16, true);
        let type = chunk[offset + 18]!;
        const end = chunk.indexOf(0, offset + 19);
        const name = decoder.decode(chunk.subarray(offset + 19, end));
        offset += length;
        if (name === "." || name === "..") continue;
        if (type === DT_UNKNOWN) {
          // A file system that does not fill in d_type: look at the entry itself.
          const path = cPath(`${dir}/${name}`);
          const mode = path && statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, 1, stat) === 0
            ? view.getUint16(28, true) & S_IFMT
            : 0;
          type = mode === S_IFREG ? DT_REG : mode === S_IFDIR ? DT_DIR : DT_UNKNOWN;
        }
        entries.push({ name, isFile: type === DT_REG, isDirectory: type === DT_DIR });
      }
    }
    return entries;
  };
  let dents: Uint8Array<ArrayBuffer> | undefined;
  return {
    list(path, limit) {
      const name = cPath(path);
      if (!name) return { errno: "ENAMETOOLONG" };
      const fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
      if (fd < 0) return { errno: errnoName(libc.errno()) };
      dents ??= new Uint8Array(DENTS_SIZE);
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      let key = "";
      let count = 0;
      let total = 0;
      try {
        for (;;) {
          // The kernel leaves the padding after each name as it was: zeroed, it is the same
          // every time, and equal bytes mean equal entries.
          dents.fill(0);
          const length = Number(getdents64(fd, dents, BigInt(DENTS_SIZE)));
          if (length < 0) return { errno: errnoName(libc.errno()) };
          if (length === 0) break;
          const chunk = dents.slice(0, length);
          chunks.push(chunk);
          // The raw entries (inode, offset, type, name).
          key += chunk.toBase64();
          total += length;
          // An entry takes 24 to 280 bytes ("." and ".." are entries too).
          if (total > (limit + 2) * 280) return { errno: "E2BIG" };
        }
      } finally {
        close(fd);
      }
      if (total >= (limit + 2) * 24) {
        for (const chunk of chunks) {
          for (let offset = 0; offset < chunk.length; offset += reclen(chunk, offset)) {
            if (++count > limit + 2) return { errno: "E2BIG" };
          }
        }
      }
      let entries: DirEntry[] | undefined;
      return {
        key,
        entries: () => entries ??= parse(path, chunks),
      };
    },
    sameIdentities(dir, names, identities) {
      const path = cPath(dir);
      if (!path) return false;
      const fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
      if (fd < 0) return false;
      try {
        for (let index = 0; index < names.length; index++) {
          const name = cPath(names[index]!);
          if (!name || statx(fd, name, 0, STATX_MASK, stat) !== 0) return false;
          if (!same(identities, index * IDENTITY_LENGTH)) return false;
        }
        return true;
      } finally {
        close(fd);
      }
    },
    identify(path, out) {
      const name = cPath(path);
      if (!name) return false;
      if (statx(AT_FDCWD, name, 0, STATX_MASK, stat) !== 0) return false;
      return fill(out);
    },
    readIdentified(path, buffer, out) {
      const name = cPath(path);
      if (!name) return { errno: "ENAMETOOLONG" };
      const fd = open(name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC, 0);
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
  list(path, limit) {
    const entries: DirEntry[] = [];
    try {
      for (const entry of Deno.readDirSync(path)) {
        if (entries.length >= limit) return { errno: "E2BIG" };
        entries.push({ name: entry.name, isFile: entry.isFile, isDirectory: entry.isDirectory });
      }
    } catch (error) {
      return { errno: errnoOfError(error) };
    }
    const key = JSON.stringify(
      entries.map((entry) => `${+entry.isFile}${+entry.isDirectory}${entry.name}`).sort(),
    );
    return { key, entries: () => entries.map((entry) => ({ ...entry })) };
  },
  sameIdentities(dir, names, identities) {
    const out = newIdentity();
    return names.every((name, index) =>
      denoIdentityFs.identify(`${dir}/${name}`, out) &&
      sameIdentity(
        out,
        Array.prototype.slice.call(
          identities,
          index * IDENTITY_LENGTH,
          (index + 1) * IDENTITY_LENGTH,
        ),
      )
    );
  },
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
      if (Deno.lstatSync(path).isSymlink) return { errno: "ELOOP" };
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

/** The length of the dirent at `offset` (d_reclen). */
function reclen(chunk: Uint8Array, offset: number): number {
  return chunk[offset + 16]! | chunk[offset + 17]! << 8;
}

/**
 * {@link KernelFs} straight through libc (open, read, write, readlink, close,
 * getdents64, statx): the production implementation. Deno does not path-check
 * FFI calls, so this works under the agent's scoped permission flags where
 * Deno's own file API refuses anything below /sys, /proc and /dev. Needs
 * `--allow-ffi`.
 *
 * @module
 */

import { libcIdentityFs } from "./file_identity.ts";
import { errnoName } from "./errno.ts";
import { isPlainRelative, openBeneath } from "./beneath.ts";
import {
  type DirEntry,
  failed,
  type FileStat,
  type FsFailure,
  type KernelFs,
  relativeBelow,
} from "./kernel_fs.ts";
import type { Libc } from "./libc.ts";

const O_RDONLY = 0;
const O_WRONLY = 1;
const O_DIRECTORY = 0o200000;
const O_NONBLOCK = 0o4000;
const O_NOCTTY = 0o400;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const PATH_MAX = 4096;
const DENTS_SIZE = 64 * 1024;
const CHUNK = 64 * 1024;
// struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[].
const DT_UNKNOWN = 0;
const DT_DIR = 4;
const DT_REG = 8;
// statx(2): the same struct layout on every architecture; stx_mode is a u16 at 28,
// stx_size a u64 at 40.
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_TYPE = 1;
const STATX_SIZE_MASK = 0x200;
const STATX_SIZE = 256;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

/**
 * The kernel's files through the libc binding. Structures are read as
 * little-endian (x86-64, arm64). Files are opened non-blocking, so a FIFO planted
 * where a data file or attribute should be cannot hang the agent. Listing a
 * directory of 10,000 tag entries allocates a string per name and nothing else
 * (Deno's readDir builds an object per entry, about 12 MB of peak memory for
 * 10,000). Needs `--allow-ffi`.
 *
 * errno is read right after a failed call, but V8 may run between the call and
 * the read (a garbage collection waiting on a futex sets errno to EAGAIN), so
 * {@link KernelFs.kind} answers by success or failure (statx), never by errno.
 */
export function libcKernelFs(libc: Libc): KernelFs {
  const { open, read, write, close, readlink, getdents64, statx } = libc.symbols;
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
  const cPath = (path: string): Uint8Array<ArrayBuffer> | FsFailure => {
    if (path.includes("\0")) return { errno: "EINVAL" };
    const { read, written } = encoder.encodeInto(path, pathBuffer);
    if (read < path.length || written >= PATH_MAX) return { errno: "ENAMETOOLONG" };
    pathBuffer[written] = 0;
    return pathBuffer;
  };
  const lastError = (): FsFailure => ({ errno: errnoName(libc.errno()) });
  /** statx of `name` (a C path) into `stat`; true on success. */
  const statxOk = (name: Uint8Array<ArrayBuffer>, follow: boolean, mask: number) =>
    statx(AT_FDCWD, name, follow ? 0 : AT_SYMLINK_NOFOLLOW, mask, stat) === 0;
  const modeType = () => statView.getUint16(28, true) & S_IFMT;
  let dents: Uint8Array<ArrayBuffer> | undefined;
  let chunk: Uint8Array<ArrayBuffer> | undefined;

  /** An entry whose file system left d_type unknown: statx it (no symlink followed). */
  const entryOf = (dir: string, name: string): DirEntry => {
    const path = cPath(`${dir}/${name}`);
    const type = path instanceof Uint8Array && statxOk(path, false, STATX_TYPE)
      ? modeType()
      : undefined;
    return { name, isFile: type === S_IFREG, isDirectory: type === S_IFDIR };
  };

  return {
    kind(path) {
      const name = cPath(path);
      if (!(name instanceof Uint8Array)) return "missing";
      if (!statxOk(name, false, STATX_TYPE)) return "missing";
      const type = modeType();
      return type === S_IFDIR ? "directory" : type === S_IFLNK ? "symlink" : "file";
    },
    stat(path): FileStat | FsFailure {
      const name = cPath(path);
      if (!(name instanceof Uint8Array)) return name;
      if (!statxOk(name, true, STATX_TYPE | STATX_SIZE_MASK)) return lastError();
      const type = modeType();
      return {
        type: type === S_IFREG
          ? "file"
          : type === S_IFDIR
          ? "directory"
          : type === S_IFCHR
          ? "char-device"
          : "other",
        size: Number(statView.getBigUint64(40, true)),
      };
    },
    readDir(path, limit = Infinity) {
      const name = cPath(path);
      if (!(name instanceof Uint8Array)) return name;
      const fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
      if (fd < 0) return lastError();
      dents ??= new Uint8Array(DENTS_SIZE);
      const view = new DataView(dents.buffer);
      const entries: DirEntry[] = [];
      const unknown: string[] = [];
      try {
        for (;;) {
          const count = Number(getdents64(fd, dents, BigInt(DENTS_SIZE)));
          if (count < 0) return lastError();
          if (count === 0) break;
          for (let offset = 0; offset < count;) {
            const length = view.getUint16(offset + 16, true);
            const type = dents[offset + 18]!;
            const end = dents.indexOf(0, offset + 19);
            const entry = decoder.decode(dents.subarray(offset + 19, end));
            offset += length;
            if (entry === "." || entry === "..") continue;
            if (entries.length + unknown.length >= limit) return { errno: "E2BIG" };
            // A file system that does not fill in d_type: look at the entry after listing.
            if (type === DT_UNKNOWN) unknown.push(entry);
            else {entries.push({
                name: entry,
                isFile: type === DT_REG,
                isDirectory: type === DT_DIR,
              });}
          }
        }
      } finally {
        close(fd);
      }
      for (const entry of unknown) entries.push(entryOf(path, entry));
      return entries;
    },
    read(path, buffer, options = {}) {
      const name = cPath(path);
      if (!(name instanceof Uint8Array)) return name;
      const noFollow = options.noFollow ? O_NOFOLLOW : 0;
      const fd = open(name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | noFollow, 0);
      if (fd < 0) return lastError();
      const count = Number(read(fd, buffer, size(buffer.length)));
      const failure = count < 0 ? lastError() : undefined;
      close(fd);
      return failure ?? count;
    },
    readFile(path, limit) {
      const name = cPath(path);
      if (!(name instanceof Uint8Array)) return name;
      const fd = open(name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
      if (fd < 0) return lastError();
      chunk ??= new Uint8Array(CHUNK);
      const parts: Uint8Array[] = [];
      let total = 0;
      try {
        for (;;) {
          const count = Number(read(fd, chunk, size(CHUNK)));
          if (count < 0) return lastError();
          if (count === 0) break;
          total += count;
          if (total > limit) return { errno: "EFBIG" };
          parts.push(chunk.slice(0, count));
        }
      } finally {
        close(fd);
      }
      const bytes = new Uint8Array(total);
      let offset = 0;
      for (const part of parts) {
        bytes.set(part, offset);
        offset += part.length;
      }
      return bytes;
    },
    readLink(path) {
      const name = cPath(path);
      if (!(name instanceof Uint8Array)) return name;
      const count = Number(readlink(name, link, LINK_SIZE));
      if (count < 0) return lastError();
      if (count >= link.length) return { errno: "ENAMETOOLONG" };
      return decoder.decode(link.subarray(0, count));
    },
    write(path, bytes, options = {}) {
      // No O_CREAT, no O_TRUNC: a missing attribute must fail, not become a file.
      // O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of hanging the open.
      const flags = O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
      let fd: number;
      if (options.beneath !== undefined) {
        const relative = relativeBelow(path, options.beneath);
        if (relative === undefined || !isPlainRelative(relative)) return { errno: "EXDEV" };
        const dir = openBeneath(libc, options.beneath);
        if (failed(dir)) return dir;
        try {
          const opened = dir.open(relative, flags);
          if (failed(opened)) return opened;
          fd = opened;
        } finally {
          dir.close();
        }
      } else {
        const name = cPath(path);
        if (!(name instanceof Uint8Array)) return name;
        fd = open(name, flags, 0);
        if (fd < 0) return lastError();
      }
      const count = Number(write(fd, bytes, size(bytes.length)));
      const failure = count < 0 ? lastError() : undefined;
      close(fd);
      return failure ?? count;
    },
    identity: libcIdentityFs(libc),
  };
}

/**
 * A {@link KernelFs} on libc, created on first use from a lazily opened binding
 * (`lazyLibc()`): what `agent/main.ts` hands to the commands. Needs `--allow-ffi`.
 */
export function lazyKernelFs(libc: () => Libc): () => KernelFs {
  let fs: KernelFs | undefined;
  return () => fs ??= libcKernelFs(libc());
}

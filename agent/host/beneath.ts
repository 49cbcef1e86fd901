/**
 * Opening a file below a directory so that it cannot lead anywhere else: no
 * symlink (not even in the middle of the path), no `..`, no magic link may be on
 * the way. This is how the agent opens every kernel file it writes (the
 * live-update attributes below `<sysfs>`): a `requested` path built from udev data
 * or a device link cannot be turned into a write elsewhere by a symlink planted
 * in the tree, and the check and the open are one system call, so nothing can
 * swap a directory for a symlink in between.
 *
 * openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
 * (Linux 5.6+, every kernel with live update). Where openat2 is missing (ENOSYS)
 * the same is done one component at a time with O_NOFOLLOW. A refused path fails
 * with ELOOP (a symlink on the way; ENOTDIR from the fallback for one before the
 * last component) or EXDEV (a `..`, an empty component or an absolute path).
 *
 * @module
 */

import { errnoName } from "./errno.ts";
import type { FsFailure } from "./kernel_fs.ts";
import type { Libc } from "./libc.ts";

const SYS_OPENAT2 = 437n; // the same number on x86-64 and arm64
const O_DIRECTORY = 0o200000;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const RESOLVE_NO_MAGICLINKS = 0x02n;
const RESOLVE_NO_SYMLINKS = 0x04n;
const RESOLVE_BENEATH = 0x08n;
const PATH_MAX = 4096;

/** A relative path with no empty, `.` or `..` component: what may be opened beneath. */
const PLAIN = /^(?:(?!\.\.?(?:\/|$))[^/\0]+)(?:\/(?!\.\.?(?:\/|$))[^/\0]+)*$/;

/** Whether `relative` is a plain relative path (no `/` at the start, no `.`, `..` or empty component). */
export function isPlainRelative(relative: string): boolean {
  return relative.length < PATH_MAX && PLAIN.test(relative);
}

/** A directory opened once, below which files are opened. Close it with `close()` or `using`. */
export interface BeneathDir extends Disposable {
  /** The directory's path (for messages). */
  readonly root: string;
  /**
   * Opens `relative` below the directory with `flags` (O_WRONLY, O_RDWR …; never
   * O_CREAT) and returns the fd, or the failure: ELOOP for a symlink on the way,
   * EXDEV for a path that would leave the directory, else the open's errno.
   */
  open(relative: string, flags: number): number | FsFailure;
  close(): void;
}

/**
 * Opens directory `root` (following symlinks in `root` itself: that is the
 * configured path) for opening files below it. Needs `--allow-ffi`.
 */
export function openBeneath(libc: Libc, root: string): BeneathDir | FsFailure {
  const { symbols } = libc;
  const encoder = new TextEncoder();
  const cPath = (path: string): Uint8Array<ArrayBuffer> | undefined => {
    const bytes = encoder.encode(path);
    if (bytes.includes(0) || bytes.length >= PATH_MAX) return undefined;
    const buffer = new Uint8Array(bytes.length + 1);
    buffer.set(bytes);
    return buffer;
  };
  const rootPath = cPath(root);
  if (!rootPath) return { errno: "ENAMETOOLONG" };
  const dirFd = symbols.open(rootPath, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  if (dirFd < 0) return { errno: errnoName(libc.errno()) };
  // struct open_how { u64 flags; u64 mode; u64 resolve; }
  const how = new BigUint64Array(3);
  const pathBuffer = new Uint8Array(PATH_MAX);
  const howBytes = new Uint8Array(how.buffer);
  let openat2Works = true;
  let closed = false;

  /** The same as openat2 beneath, one component at a time (kernels without openat2). */
  const walk = (parts: string[], flags: number): number | FsFailure => {
    let current = dirFd;
    try {
      for (const [index, part] of parts.entries()) {
        const last = index === parts.length - 1;
        const name = cPath(part)!;
        const next = symbols.openat(
          current,
          name,
          last ? flags | O_NOFOLLOW | O_CLOEXEC : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
          0,
        );
        // A symlink fails here: ELOOP as the last component, ENOTDIR before it.
        if (next < 0) return { errno: errnoName(libc.errno()) };
        if (current !== dirFd) symbols.close(current);
        current = next;
      }
      const fd = current;
      current = dirFd;
      return fd;
    } finally {
      if (current !== dirFd) symbols.close(current);
    }
  };

  const close = () => {
    if (closed) return;
    closed = true;
    symbols.close(dirFd);
  };
  return {
    root,
    open(relative, flags) {
      if (closed) return { errno: "EBADF" };
      if (!isPlainRelative(relative)) {
        return { errno: relative.includes("\0") ? "EINVAL" : "EXDEV" };
      }
      // One buffer for every path (a reconcile opens thousands).
      const { read, written } = encoder.encodeInto(relative, pathBuffer);
      if (read < relative.length || written >= PATH_MAX) return { errno: "ENAMETOOLONG" };
      pathBuffer[written] = 0;
      const name = pathBuffer;
      if (openat2Works) {
        how[0] = BigInt(flags | O_CLOEXEC);
        how[1] = 0n;
        how[2] = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        const fd = Number(
          symbols.syscall_openat2(SYS_OPENAT2, BigInt(dirFd), name, howBytes, 24n),
        );
        if (fd >= 0) return fd;
        const errno = errnoName(libc.errno());
        if (errno !== "ENOSYS") return { errno };
        openat2Works = false;
      }
      return walk(relative.split("/"), flags);
    },
    close,
    [Symbol.dispose]: close,
  };
}

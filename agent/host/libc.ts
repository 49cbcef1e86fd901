/**
 * The one door to libc through Deno FFI, for what Deno has no API for: poll(2) on
 * sysfs attributes, ioctl(2) on /dev/liveupdate, and unix sockets with
 * SCM_RIGHTS or datagrams (sd_notify). `agent/main.ts` opens it once, lazily, and
 * passes it down; tests open their own and close it (`using libc = openLibc()`).
 * Needs `--allow-ffi`.
 *
 * Every call returns the raw result; {@link Libc.errno} reads errno right after a
 * failed call (call it synchronously, before anything else runs on this thread).
 * errno is per thread: after a `nonblocking` call (which runs on another thread)
 * it is NOT readable; use the `_now` variants where the errno matters.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { errnoName } from "./errno.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  // syscall(SYS_openat2, dirfd, path, &how, sizeof how): glibc 2.36 does not wrap openat2(2).
  syscall_openat2: {
    name: "syscall",
    parameters: ["i64", "i64", "buffer", "buffer", "u64"],
    result: "i64",
  },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  poll_now: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32", nonblocking: true },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize", nonblocking: true },
  recvmsg_now: { name: "recvmsg", parameters: ["i32", "buffer", "i32"], result: "isize" },
  accept4_now: { name: "accept4", parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  reboot: { parameters: ["i32"], result: "i32" },
  // syscall(nr, a, b, c, pointer, e): the shape of kexec_file_load(2), which glibc does not wrap.
  syscall_kexec_file_load: {
    name: "syscall",
    parameters: ["i64", "i64", "i64", "i64", "buffer", "u64"],
    result: "i64",
  },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  getpid: { parameters: [], result: "i32" },
  geteuid: { parameters: [], result: "u32" },
  getegid: { parameters: [], result: "u32" },
  getgroups: { parameters: ["i32", "buffer"], result: "i32" },
  getgrnam_r: {
    parameters: ["buffer", "buffer", "buffer", "usize", "buffer"],
    result: "i32",
  },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libc's symbols as Deno FFI exposes them. */
export type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A libc binding. */
export interface Libc extends Disposable {
  readonly symbols: LibcSymbols;
  /** errno of the last failed call on this thread. */
  errno(): number;
  /** The name of the last errno ("EINVAL"). */
  errnoName(): string;
  /** Unloads the library; the binding must not be used afterwards. */
  close(): void;
}

/** Opens libc and returns a binding. Needs `--allow-ffi`; says so when it is missing. */
export function openLibc(): Libc {
  let library: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    library = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (error) {
    throw new AgentError(
      `Cannot load libc through FFI (${error instanceof Error ? error.message : error}): the ` +
        "agent reaches the kernel's files, poll(2) and sd_notify through it and must run with " +
        "--allow-ffi (as its build does: agent/build/permissions.ts).",
      { cause: error },
    );
  }
  const errno = () => {
    const pointer = library.symbols.__errno_location();
    return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
  };
  const close = () => library.close();
  return {
    symbols: library.symbols,
    errno,
    errnoName: () => errnoName(errno()),
    close,
    [Symbol.dispose]: close,
  };
}

/**
 * A libc binding opened on first use, for `agent/main.ts` to hand down: commands
 * that never need FFI never load it (and never need `--allow-ffi`).
 */
export function lazyLibc(): () => Libc {
  let opened: Libc | undefined;
  return () => opened ??= openLibc();
}

/** A NUL-terminated C string for a path or name argument. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(text);
  if (bytes.includes(0)) throw new TypeError(`String ${JSON.stringify(text)} contains NUL`);
  const buffer = new Uint8Array(bytes.length + 1);
  buffer.set(bytes);
  return buffer;
}

/**
 * Small helpers the guest programs need around libc: memfds with contents,
 * pipes, seals, fdinfo, and loading the next kernel with kexec_file_load(2) +
 * reboot(2) (the initramfs has no kexec-tools; this is the same system call
 * `kexec -s -l` makes).
 *
 * @module
 */

import { cString, type Libc } from "../../../agent/host/libc.ts";

const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
const F_GET_SEALS = 1034;
const F_GETFD = 1;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const SYS_KEXEC_FILE_LOAD = 320n;
const LINUX_REBOOT_CMD_KEXEC = 0x45584543;

/** Seals (fcntl F_ADD_SEALS). */
export const SEAL = { seal: 1, shrink: 2, grow: 4, write: 8 } as const;

function fail(libc: Libc, what: string): never {
  throw new Error(`${what} failed: ${libc.errnoName()}`);
}

/** Writes all of `data` to `fd` at its position. */
export function writeAll(libc: Libc, fd: number, data: Uint8Array<ArrayBuffer>): void {
  let done = 0;
  while (done < data.length) {
    const chunk = data.subarray(done);
    const count = Number(libc.symbols.write(fd, chunk, BigInt(chunk.length)));
    if (count <= 0) fail(libc, `write(${fd})`);
    done += count;
  }
}

/** A memfd (close-on-exec, sealable) holding `data`; its position ends after the data. */
export function memfdWith(libc: Libc, name: string, data: Uint8Array<ArrayBuffer>): number {
  const fd = libc.symbols.memfd_create(cString(name), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) fail(libc, "memfd_create");
  writeAll(libc, fd, data);
  return fd;
}

/** The whole contents of `fd` (pread from 0, size from fdinfo-independent reads). */
export function readAll(libc: Libc, fd: number, size: number): Uint8Array<ArrayBuffer> {
  const buffer = new Uint8Array(size);
  let done = 0;
  while (done < size) {
    const chunk = buffer.subarray(done);
    const count = Number(libc.symbols.pread(fd, chunk, BigInt(chunk.length), BigInt(done)));
    if (count < 0) fail(libc, `pread(${fd})`);
    if (count === 0) break;
    done += count;
  }
  return buffer.subarray(0, done);
}

/** Adds seals to a memfd. */
export function addSeals(libc: Libc, fd: number, seals: number): void {
  if (libc.symbols.fcntl(fd, F_ADD_SEALS, seals) < 0) fail(libc, "F_ADD_SEALS");
}

/** A memfd's seals. */
export function seals(libc: Libc, fd: number): number {
  const value = libc.symbols.fcntl(fd, F_GET_SEALS, 0);
  if (value < 0) fail(libc, "F_GET_SEALS");
  return value;
}

/** Whether `fd` has FD_CLOEXEC set. */
export function closeOnExec(libc: Libc, fd: number): boolean {
  const flags = libc.symbols.fcntl(fd, F_GETFD, 0);
  if (flags < 0) fail(libc, "F_GETFD");
  return (flags & 1) === 1;
}

/** A pipe's [read, write] fds. */
export function pipe(libc: Libc): [number, number] {
  const fds = new Int32Array(2);
  if (libc.symbols.pipe2(new Uint8Array(fds.buffer), O_CLOEXEC) < 0) fail(libc, "pipe2");
  return [fds[0]!, fds[1]!];
}

/** A field of /proc/self/fdinfo/FD ("pos", "ino", "flags"). */
export function fdinfo(fd: number, field: string): string {
  const text = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
  const match = text.match(new RegExp(`^${field}:\\s*(\\S+)`, "m"));
  if (!match?.[1]) throw new Error(`No ${field} in /proc/self/fdinfo/${fd}`);
  return match[1];
}

/** Sets the fd's file position. */
export function seek(libc: Libc, fd: number, offset: number): void {
  if (libc.symbols.lseek(fd, BigInt(offset), 0) < 0) fail(libc, `lseek(${fd})`);
}

/** Reads `count` bytes at the fd's position (moving it). */
export function readAt(libc: Libc, fd: number, count: number): Uint8Array<ArrayBuffer> {
  const buffer = new Uint8Array(count);
  const read = Number(libc.symbols.read(fd, buffer, BigInt(count)));
  if (read < 0) fail(libc, `read(${fd})`);
  return buffer.subarray(0, read);
}

/** A deterministic pseudo-random pattern of `size` bytes (xorshift32 from `seed`). */
export function pattern(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Hex SHA-256 of `data`. */
export async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Loads `kernel` and `initrd` with kexec_file_load(2) (what `kexec -s -l` does;
 * the only load that carries KHO and thus the sessions).
 */
export function kexecFileLoad(libc: Libc, kernel: string, initrd: string, cmdline: string): void {
  const kernelFd = libc.symbols.open(cString(kernel), O_RDONLY | O_CLOEXEC, 0);
  if (kernelFd < 0) fail(libc, `open(${kernel})`);
  const initrdFd = libc.symbols.open(cString(initrd), O_RDONLY | O_CLOEXEC, 0);
  if (initrdFd < 0) fail(libc, `open(${initrd})`);
  try {
    const line = cString(cmdline);
    const result = libc.symbols.syscall_kexec_file_load(
      SYS_KEXEC_FILE_LOAD,
      BigInt(kernelFd),
      BigInt(initrdFd),
      BigInt(line.length),
      line,
      0n,
    );
    if (result < 0) fail(libc, "kexec_file_load");
  } finally {
    libc.symbols.close(kernelFd);
    libc.symbols.close(initrdFd);
  }
}

/** reboot(LINUX_REBOOT_CMD_KEXEC): jumps into the loaded kernel. Returns only on failure. */
export function rebootIntoLoadedKernel(libc: Libc): never {
  libc.symbols.reboot(LINUX_REBOOT_CMD_KEXEC);
  fail(libc, "reboot(LINUX_REBOOT_CMD_KEXEC)");
}

/** The current command line with `luotest.boot=` set to `boot`. */
export function nextCmdline(boot: number): string {
  const words = Deno.readTextFileSync("/proc/cmdline").trim().split(/\s+/)
    .filter((word) => !word.startsWith("luotest.boot="));
  return [...words, `luotest.boot=${boot}`].join(" ");
}

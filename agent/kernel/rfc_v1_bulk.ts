/**
 * The RFC v1 per-device flags for many devices at once: the fast path behind
 * {@link DeviceKernel.readRequestedMany} and {@link DeviceKernel.setRequestedMany}.
 *
 * A host may have tens of thousands of devices to request. Through Deno's async
 * file API each flag costs about 50–100 µs (a thread-pool round trip per open,
 * read and close), so reading, writing and verifying 10,000 flags would take
 * seconds. These calls go straight to open(2)/read(2)/write(2)/close(2) through
 * the libc binding, synchronously, in one pass — the same system calls an
 * `echo 1 >` loop makes — and turn each failure into the same KernelError the
 * one-device calls throw. A failing device never stops the others.
 *
 * @module
 */

import { cString, errnoName, type Libc } from "../host/mod.ts";
import { parseFlag, parseState } from "./contents.ts";
import { checkDevicePath } from "./device_path.ts";
import type { DevicePath, LuoState } from "./kernel.ts";
import { KernelError, type KernelOperation } from "./kernel_error.ts";
import { kernelFailure } from "./kernel_failure.ts";

const O_RDONLY = 0;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
// An attribute holds "0\n" or "1\n"; anything longer is wrong, and 64 bytes tell it.
const READ_LIMIT = 64;
const READ_SIZE = BigInt(READ_LIMIT);

const PATH_MAX = 4096;
const decoder = new TextDecoder();
const encoder = new TextEncoder();
const ONE = encoder.encode("1");
const ZERO = encoder.encode("0");
const NEWLINE = 10;
const DIGIT_ZERO = 48;
const DIGIT_ONE = 49;
/** The attribute below a device directory. */
const REQUESTED = "/liveupdate/requested";

/**
 * Writes `<devicesDir>/<device>/liveupdate/requested` as a C string into one reused
 * buffer: the directory and the attribute's name are encoded once, only the device
 * path per call (no string built, nothing allocated per device). Undefined when the
 * path does not fit (the caller builds it the slow way and lets the kernel answer).
 */
function requestedPaths(
  devicesDir: string,
): (device: DevicePath) => Uint8Array<ArrayBuffer> | undefined {
  const buffer = new Uint8Array(PATH_MAX);
  const prefix = encoder.encode(`${devicesDir}/`);
  const suffix = encoder.encode(`${REQUESTED}\0`);
  if (prefix.length + suffix.length >= PATH_MAX) return () => undefined;
  buffer.set(prefix);
  const middle = buffer.subarray(prefix.length, PATH_MAX - suffix.length);
  return (device) => {
    const { read, written } = encoder.encodeInto(device, middle);
    if (read < device.length) return undefined;
    buffer.set(suffix, prefix.length + written);
    return buffer;
  };
}

/**
 * The flag in the first `count` bytes of `bytes`: the kernel's `0\n` or `1\n`
 * compared as bytes (no decoding per device); anything else goes through
 * {@link parseFlag}, which accepts or explains it.
 */
function flagOf(bytes: Uint8Array, count: number, devicesDir: string, device: string): boolean {
  if (count === 2 && bytes[1] === NEWLINE) {
    if (bytes[0] === DIGIT_ONE) return true;
    if (bytes[0] === DIGIT_ZERO) return false;
  }
  return parseFlag(decoder.decode(bytes.subarray(0, count)), fileOf(devicesDir, device));
}

/** The attribute's file name, for messages. */
function fileOf(devicesDir: string, device: string): string {
  return `${devicesDir}/${device}${REQUESTED}`;
}

/**
 * A clean device path, tested without allocating (10,000 devices per call):
 * relative, components without "/", NUL or newline, none empty, "." or "..".
 * Anything else goes through {@link checkDevicePath} for its error.
 */
const CLEAN_PATH = /^(?:(?!\.\.?(?:\/|$))[^/\0\n]+)(?:\/(?!\.\.?(?:\/|$))[^/\0\n]+)*$/;

function devicePath(device: DevicePath): DevicePath {
  return device.length <= 4096 && CLEAN_PATH.test(device) ? device : checkDevicePath(device);
}

/** An error shaped like Deno's, so {@link kernelFailure} reads its errno. */
function osError(errno: string, call: string, file: string): Error {
  return Object.assign(new Error(`${errno}: ${call} ${file}`), { code: errno });
}

/** Reads a small attribute; returns its text or the errno name. */
function readAttribute(
  libc: Libc,
  file: string,
  buffer: Uint8Array<ArrayBuffer>,
): string | { errno: string; call: string } {
  const fd = libc.symbols.open(cString(file), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return { errno: errnoName(libc.errno()), call: "open" };
  try {
    const count = Number(libc.symbols.read(fd, buffer, READ_SIZE));
    if (count < 0) return { errno: errnoName(libc.errno()), call: "read" };
    return decoder.decode(buffer.subarray(0, count));
  } finally {
    libc.symbols.close(fd);
  }
}

/** The error for a device path the kernel layer refuses (see {@link checkDevicePath}). */
function refusedPath(device: DevicePath, file: string, operation: KernelOperation, error: unknown) {
  return new KernelError(`Device path "${device}" is refused: ${(error as Error).message}`, {
    file,
    operation,
    cause: error,
  });
}

/**
 * Reads `requested` of every device in `devices` (paths below `devicesDir`), in
 * order. Each entry is the flag, or the KernelError reading it failed with.
 * Three system calls per device (open, read, close) and no allocation beyond the
 * result: the common answer is compared as bytes, and file names are built as
 * strings only for errors. Needs `--allow-ffi`.
 */
export function readRequestedMany(
  libc: Libc,
  devicesDir: string,
  devices: readonly DevicePath[],
): (boolean | KernelError)[] {
  const { open, read, close } = libc.symbols;
  const buffer = new Uint8Array(READ_LIMIT);
  const pathOf = requestedPaths(devicesDir);
  const results: (boolean | KernelError)[] = new Array(devices.length);
  for (let index = 0; index < devices.length; index++) {
    const device = devices[index]!;
    try {
      devicePath(device);
    } catch (error) {
      results[index] = refusedPath(device, fileOf(devicesDir, device), "read", error);
      continue;
    }
    const fd = open(pathOf(device) ?? cString(fileOf(devicesDir, device)), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
      const cause = osError(errnoName(libc.errno()), "open", fileOf(devicesDir, device));
      results[index] = kernelFailure(cause, {
        file: fileOf(devicesDir, device),
        operation: "read",
        device,
      });
      continue;
    }
    const count = Number(read(fd, buffer, READ_SIZE));
    const errno = count < 0 ? errnoName(libc.errno()) : undefined;
    close(fd);
    if (errno !== undefined) {
      const cause = osError(errno, "read", fileOf(devicesDir, device));
      results[index] = kernelFailure(cause, {
        file: fileOf(devicesDir, device),
        operation: "read",
        device,
      });
      continue;
    }
    try {
      results[index] = flagOf(buffer, count, devicesDir, device);
    } catch (error) {
      results[index] = error as KernelError;
    }
  }
  return results;
}

/**
 * Writes `requested` = `value` on every device in `devices`, in order, and reads
 * each flag back on the same open file. Each entry is null when the flag now reads
 * `value`; otherwise the KernelError the write failed with (its message names the
 * state when the kernel refused because the state is not normal), or one without
 * errno when the flag reads back differently. Needs `--allow-ffi`.
 */
export function setRequestedMany(
  libc: Libc,
  devicesDir: string,
  stateFile: string,
  devices: readonly DevicePath[],
  value: boolean,
): (KernelError | null)[] {
  const bytes = value ? ONE : ZERO;
  const operation = value ? "request" : "unrequest";
  const failures: { index: number; device: DevicePath; file: string; cause: Error }[] = [];
  const { open, write, pread, close } = libc.symbols;
  const pathOf = requestedPaths(devicesDir);
  const readBack = new Uint8Array(READ_LIMIT);
  const results: (KernelError | null)[] = new Array(devices.length).fill(null);
  for (let index = 0; index < devices.length; index++) {
    const device = devices[index]!;
    try {
      devicePath(device);
    } catch (error) {
      results[index] = refusedPath(device, fileOf(devicesDir, device), operation, error);
      continue;
    }
    // No create, no truncate: a missing attribute must fail, not become a file.
    const fd = open(pathOf(device) ?? cString(fileOf(devicesDir, device)), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      const cause = osError(errnoName(libc.errno()), "open", fileOf(devicesDir, device));
      failures.push({ index, device, file: fileOf(devicesDir, device), cause });
      continue;
    }
    const written = Number(write(fd, bytes, 1n));
    if (written < 0) {
      const cause = osError(errnoName(libc.errno()), "write", fileOf(devicesDir, device));
      close(fd);
      failures.push({ index, device, file: fileOf(devicesDir, device), cause });
      continue;
    }
    // Read back on the same file (sysfs shows the attribute afresh at offset 0).
    const count = written === 1 ? Number(pread(fd, readBack, READ_SIZE, 0n)) : 0;
    close(fd);
    if (written !== 1) {
      results[index] = new KernelError(
        `The kernel accepted ${written} of 1 byte written to ${fileOf(devicesDir, device)}.`,
        { file: fileOf(devicesDir, device), operation },
      );
      continue;
    }
    let now: boolean | undefined;
    try {
      now = count < 0 ? undefined : flagOf(readBack, count, devicesDir, device);
    } catch {
      now = undefined;
    }
    if (now !== value) {
      const text = count < 0
        ? "nothing"
        : JSON.stringify(decoder.decode(readBack.subarray(0, count)));
      results[index] = new KernelError(
        `After writing ${value ? 1 : 0} to ${
          fileOf(devicesDir, device)
        } the kernel reads back ${text}.`,
        { file: fileOf(devicesDir, device), operation },
      );
    }
  }
  if (failures.length > 0) {
    // Read the state once for every message (EINVAL means something else outside "normal").
    let state: LuoState | undefined;
    const text = readAttribute(libc, stateFile, new Uint8Array(READ_LIMIT));
    if (typeof text === "string") {
      try {
        state = parseState(text, stateFile);
      } catch {
        state = undefined;
      }
    }
    for (const failure of failures) {
      const errno = (failure.cause as { code?: string }).code;
      results[failure.index] = kernelFailure(failure.cause, {
        file: failure.file,
        operation,
        device: failure.device,
        state: errno === "ENOENT" ? undefined : state,
      });
    }
  }
  return results;
}

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

import { cString, errnoName, failed, type Libc, openBeneath } from "../host/mod.ts";
import { parseFlag, parseState } from "./contents.ts";
import { checkDevicePath } from "./device_path.ts";
import type { DevicePath, LuoState } from "./kernel.ts";
import { KernelError } from "./kernel_error.ts";
import { fsFailureError, kernelFailure } from "./kernel_failure.ts";

const O_RDONLY = 0;
const O_RDWR = 2;
// A FIFO planted where an attribute should be must fail, not block the agent.
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
// An attribute holds "0\n" or "1\n"; anything longer is wrong, and 64 bytes tell it.
const READ_LIMIT = 64;
const READ_SIZE = BigInt(READ_LIMIT);

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const ONE = encoder.encode("1");
const ZERO = encoder.encode("0");

/**
 * A clean device path, tested without allocating (10,000 devices per call):
 * relative, components without "/", NUL or newline, none empty, "." or "..".
 * Anything else goes through {@link checkDevicePath} for its error.
 */
const CLEAN_PATH = /^(?:(?!\.\.?(?:\/|$))[^/\0\n]+)(?:\/(?!\.\.?(?:\/|$))[^/\0\n]+)*$/;

function devicePath(device: DevicePath): DevicePath {
  return device.length <= 4096 && CLEAN_PATH.test(device) ? device : checkDevicePath(device);
}

/** Opens a file for reading: the fd, or the errno name. */
type Opener = (file: string) => number | { errno: string };

/** Reads a small attribute; returns its text or the errno name. */
function readAttribute(
  libc: Libc,
  file: string,
  buffer: Uint8Array<ArrayBuffer>,
  open: Opener = (path) => {
    const fd = libc.symbols.open(cString(path), O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
    return fd < 0 ? { errno: errnoName(libc.errno()) } : fd;
  },
): string | { errno: string; call: string } {
  const fd = open(file);
  if (failed(fd)) return { errno: fd.errno, call: "open" };
  try {
    const count = Number(libc.symbols.read(fd, buffer, READ_SIZE));
    if (count < 0) return { errno: errnoName(libc.errno()), call: "read" };
    return decoder.decode(buffer.subarray(0, count));
  } finally {
    libc.symbols.close(fd);
  }
}

/**
 * Reads `requested` of every device in `devices` (paths below `devicesDir`), in
 * order. Each entry is the flag, or the KernelError reading it failed with.
 * Needs `--allow-ffi`.
 */
export function readRequestedMany(
  libc: Libc,
  devicesDir: string,
  devices: readonly DevicePath[],
): (boolean | KernelError)[] {
  const buffer = new Uint8Array(READ_LIMIT);
  // Read below <sysfs>/devices through real directories only, as the writes are: a
  // planted symlink must not make the agent read (and quote) a file elsewhere.
  const dir = openBeneath(libc, devicesDir);
  const prefix = `${devicesDir}/`;
  const open: Opener = (file) =>
    failed(dir) ? dir : dir.open(file.slice(prefix.length), O_RDONLY | O_NONBLOCK);
  const results = devices.map((device) => {
    const file = `${devicesDir}/${device}/liveupdate/requested`;
    try {
      devicePath(device);
      const text = readAttribute(libc, file, buffer, open);
      if (typeof text !== "string") {
        throw kernelFailure(fsFailureError(text.errno, text.call, file), {
          file,
          operation: "read",
          device,
        });
      }
      return parseFlag(text, file);
    } catch (error) {
      if (error instanceof KernelError) return error;
      return new KernelError(`Device path "${device}" is refused: ${(error as Error).message}`, {
        file,
        operation: "read",
        cause: error,
      });
    }
  });
  if (!failed(dir)) dir.close();
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
  const readBack = new Uint8Array(READ_LIMIT);
  // Every flag is opened below <sysfs>/devices through real directories only: a
  // symlink or ".." planted on the way is refused (ELOOP, EXDEV), never followed.
  const dir = openBeneath(libc, devicesDir);
  if (failed(dir)) {
    return devices.map((device) => {
      const file = `${devicesDir}/${device}/liveupdate/requested`;
      return kernelFailure(fsFailureError(dir.errno, "open", devicesDir), {
        file,
        operation,
        device,
      });
    });
  }
  const results: (KernelError | null)[] = devices.map((device, index) => {
    const file = `${devicesDir}/${device}/liveupdate/requested`;
    try {
      devicePath(device);
    } catch (error) {
      return new KernelError(`Device path "${device}" is refused: ${(error as Error).message}`, {
        file,
        operation,
        cause: error,
      });
    }
    // No create, no truncate: a missing attribute must fail, not become a file.
    const fd = dir.open(`${device}/liveupdate/requested`, O_RDWR | O_NONBLOCK);
    if (failed(fd)) {
      failures.push({ index, device, file, cause: fsFailureError(fd.errno, "open", file) });
      return null;
    }
    try {
      const written = Number(libc.symbols.write(fd, bytes, 1n));
      if (written < 0) {
        failures.push({
          index,
          device,
          file,
          cause: fsFailureError(errnoName(libc.errno()), "write", file),
        });
      } else if (written !== 1) {
        return new KernelError(`The kernel accepted ${written} of 1 byte written to ${file}.`, {
          file,
          operation,
        });
      } else {
        // Read back on the same file (sysfs shows the attribute afresh at offset 0).
        const count = Number(libc.symbols.pread(fd, readBack, READ_SIZE, 0n));
        const text = count < 0 ? undefined : decoder.decode(readBack.subarray(0, count));
        let now: boolean | undefined;
        try {
          now = text === undefined ? undefined : parseFlag(text, file);
        } catch {
          now = undefined;
        }
        if (now !== value) {
          return new KernelError(
            `After writing ${value ? 1 : 0} to ${file} the kernel reads back ` +
              `${text === undefined ? "nothing" : JSON.stringify(text)}.`,
            { file, operation },
          );
        }
      }
    } finally {
      libc.symbols.close(fd);
    }
    return null;
  });
  dir.close();
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

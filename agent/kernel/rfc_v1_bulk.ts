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

import {
  type BeneathDir,
  cString,
  errnoName,
  failed,
  type FsFailure,
  type Libc,
  openBeneath,
} from "../host/mod.ts";
import { parseFlag, parseState } from "./contents.ts";
import { checkDevicePath } from "./device_path.ts";
import type { DevicePath, LuoState } from "./kernel.ts";
import { KernelError, type KernelOperation } from "./kernel_error.ts";
import { fsFailureError, kernelFailure } from "./kernel_failure.ts";

const O_RDONLY = 0;
const O_RDWR = 2;
const O_NONBLOCK = 0o4000;
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
/** The attribute's path below the device's directory, as opened beneath `devicesDir`. */
const REQUESTED_BELOW = "liveupdate/requested";

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

/** Reads a small attribute; returns its text or the errno name. */
function readAttribute(
  libc: Libc,
  file: string,
  buffer: Uint8Array<ArrayBuffer>,
): string | { errno: string; call: string } {
  // O_NONBLOCK: a FIFO planted in place of an attribute must not hang the agent.
  const fd = libc.symbols.open(cString(file), O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
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
 * What reading or writing flags needs: the libc calls, buffers and the devices
 * directory, made once per call. Every flag is opened below `<sysfs>/devices`
 * through real directories only (see `beneath.ts`): a symlink or ".." planted on
 * the way is refused (ELOOP, EXDEV), never followed, for reads as for writes, so
 * a planted link can neither redirect a write nor make the agent read (and quote)
 * a file elsewhere. The directory is held open until {@link release}.
 */
class FlagFiles {
  readonly #libc: Libc;
  readonly #devicesDir: string;
  readonly #buffer = new Uint8Array(READ_LIMIT);
  #dir: BeneathDir | FsFailure | undefined;
  #openErrno = "";

  constructor(libc: Libc, devicesDir: string) {
    this.#libc = libc;
    this.#devicesDir = devicesDir;
  }

  /** Closes the devices directory (opened again when needed). */
  release(): void {
    if (this.#dir && !failed(this.#dir)) this.#dir.close();
    this.#dir = undefined;
  }

  file(device: DevicePath): string {
    return fileOf(this.#devicesDir, device);
  }

  /** The device path, or the KernelError refusing it. */
  check(device: DevicePath, operation: KernelOperation): KernelError | undefined {
    if (device.length <= PATH_MAX && CLEAN_PATH.test(device)) return undefined;
    try {
      checkDevicePath(device);
      return undefined;
    } catch (error) {
      return refusedPath(device, this.file(device), operation, error);
    }
  }

  /**
   * Opens the device's `requested` beneath the devices directory (never creating or
   * truncating, never blocking); the fd, or -1 (see {@link openErrno}).
   */
  open(device: DevicePath, flags: number): number {
    this.#dir ??= openBeneath(this.#libc, this.#devicesDir);
    const fd = failed(this.#dir)
      ? this.#dir
      : this.#dir.open(`${device}/${REQUESTED_BELOW}`, flags | O_NONBLOCK);
    if (typeof fd === "number") return fd;
    this.#openErrno = fd.errno;
    return -1;
  }

  /** The errno name of the last failed {@link open}. */
  openErrno(): string {
    return this.#openErrno;
  }

  /** The errno name of the last failed read or write. */
  errno(): string {
    return errnoName(this.#libc.errno());
  }

  /** A failed call's KernelError, worded by {@link kernelFailure}. */
  failure(device: DevicePath, errno: string, call: string, operation: KernelOperation) {
    const file = this.file(device);
    return kernelFailure(fsFailureError(errno, call, file), { file, operation, device });
  }

  /** Reads the flag at offset 0 of `fd`: the flag, or the KernelError. */
  read(fd: number, device: DevicePath): boolean | KernelError {
    const buffer = this.#buffer;
    const count = Number(this.#libc.symbols.pread(fd, buffer, READ_SIZE, 0n));
    // The kernel's answer, compared as bytes; anything else is parsed (and explained).
    if (count === 2 && buffer[1] === NEWLINE) {
      if (buffer[0] === DIGIT_ONE) return true;
      if (buffer[0] === DIGIT_ZERO) return false;
    }
    if (count < 0) return this.failure(device, this.errno(), "read", "read");
    try {
      return flagOf(this.#buffer, count, this.#devicesDir, device);
    } catch (error) {
      return error as KernelError;
    }
  }

  /** Reads the device's flag by path (open, read, close). */
  readByPath(device: DevicePath): boolean | KernelError {
    const refused = this.check(device, "read");
    if (refused) return refused;
    const fd = this.open(device, O_RDONLY);
    if (fd < 0) return this.failure(device, this.openErrno(), "open", "read");
    const flag = this.read(fd, device);
    this.#libc.symbols.close(fd);
    return flag;
  }

  /**
   * Writes `value` to the open `fd` and reads it back (sysfs shows the attribute
   * afresh at offset 0); does not close it. Null when the flag now reads `value`;
   * the cause when the write failed (for {@link finishWrites}); otherwise the
   * KernelError.
   */
  write(fd: number, device: DevicePath, value: boolean): KernelError | Error | null {
    const operation = value ? "request" : "unrequest";
    const written = Number(this.#libc.symbols.write(fd, value ? ONE : ZERO, 1n));
    if (written < 0) return fsFailureError(this.errno(), "write", this.file(device));
    if (written !== 1) {
      return new KernelError(
        `The kernel accepted ${written} of 1 byte written to ${this.file(device)}.`,
        { file: this.file(device), operation },
      );
    }
    const count = Number(this.#libc.symbols.pread(fd, this.#buffer, READ_SIZE, 0n));
    let now: boolean | undefined;
    try {
      now = count < 0 ? undefined : flagOf(this.#buffer, count, this.#devicesDir, device);
    } catch {
      now = undefined;
    }
    if (now === value) return null;
    const text = count < 0
      ? "nothing"
      : JSON.stringify(decoder.decode(this.#buffer.subarray(0, count)));
    return new KernelError(
      `After writing ${value ? 1 : 0} to ${this.file(device)} the kernel reads back ${text}.`,
      { file: this.file(device), operation },
    );
  }

  /** Opens the device's flag for writing, writes `value`, reads it back and closes it. */
  writeByPath(device: DevicePath, value: boolean): KernelError | Error | null {
    const refused = this.check(device, value ? "request" : "unrequest");
    if (refused) return refused;
    const fd = this.open(device, O_RDWR);
    if (fd < 0) return fsFailureError(this.openErrno(), "open", this.file(device));
    const outcome = this.write(fd, device, value);
    this.#libc.symbols.close(fd);
    return outcome;
  }

  /**
   * Turns the causes of failed writes in `outcomes` into KernelErrors; the state is
   * read once for all their messages (EINVAL means something else outside "normal").
   */
  finishWrites(
    outcomes: (KernelError | Error | null)[],
    devices: readonly DevicePath[],
    stateFile: string,
    value: boolean,
  ): (KernelError | null)[] {
    let state: LuoState | undefined | null = null;
    return outcomes.map((outcome, index) => {
      if (outcome === null || outcome instanceof KernelError) return outcome;
      if (state === null) {
        state = undefined;
        const text = readAttribute(this.#libc, stateFile, new Uint8Array(READ_LIMIT));
        if (typeof text === "string") {
          try {
            state = parseState(text, stateFile);
          } catch {
            state = undefined;
          }
        }
      }
      const device = devices[index]!;
      const errno = (outcome as { code?: string }).code;
      return kernelFailure(outcome, {
        file: this.file(device),
        operation: value ? "request" : "unrequest",
        device,
        state: errno === "ENOENT" ? undefined : state,
      });
    });
  }
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
  const files = new FlagFiles(libc, devicesDir);
  const results: (boolean | KernelError)[] = new Array(devices.length);
  for (let index = 0; index < devices.length; index++) {
    results[index] = files.readByPath(devices[index]!);
  }
  files.release();
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
  const files = new FlagFiles(libc, devicesDir);
  const outcomes: (KernelError | Error | null)[] = new Array(devices.length);
  for (let index = 0; index < devices.length; index++) {
    outcomes[index] = files.writeByPath(devices[index]!, value);
  }
  files.release();
  return files.finishWrites(outcomes, devices, stateFile, value);
}

const F_DUPFD_CLOEXEC = 1030;

/**
 * Makes room in the process's file descriptor table for `count` more files above
 * `fd` at once. Growing the table takes an RCU grace period in a multi-threaded
 * process (milliseconds on a busy host), and holding 10,000 files would otherwise
 * grow it eight times over; duplicating `fd` to the highest number needed grows it
 * once. Nothing happens when that number is beyond RLIMIT_NOFILE.
 */
function reserveDescriptors(libc: Libc, fd: number, count: number): void {
  if (count < 64) return;
  const high = libc.symbols.fcntl(fd, F_DUPFD_CLOEXEC, fd + count + 16);
  if (high >= 0) libc.symbols.close(high);
}

/**
 * The most files {@link holdRequestedMany} keeps open at once. Each open sysfs
 * attribute costs the kernel about a page once read, so holding is bounded (64 MiB
 * of kernel memory at most); devices beyond it are written by path.
 */
export const MAX_HELD = 16_384;

/** `requested` files read and held open for a write (see {@link holdRequestedMany}). */
export interface HeldFlags extends Disposable {
  /** `requested` of each device, in order, or the KernelError reading it failed with. */
  readonly flags: readonly (boolean | KernelError)[];
  /**
   * Writes the value the files are held for to the devices at `indexes` and reads
   * each back, through the held file (then closed) where there is one, else by
   * path; entries as {@link setRequestedMany}'s.
   */
  write(indexes: readonly number[]): (KernelError | null)[];
  /** Closes every file still held. */
  close(): void;
}

/**
 * Reads `requested` of every device in `devices` like {@link readRequestedMany},
 * and keeps the file of each device whose flag is not `value` open (read and
 * write, at most `maxHeld`), so that writing `value` there afterwards opens
 * nothing again: a device read and then changed costs five system calls (open,
 * read, write, read back, close) instead of seven. Devices whose flag already is
 * `value` cost what {@link readRequestedMany} costs. A file that cannot be opened
 * for writing is read the plain way (its error is the plain read's). The caller
 * closes what is left (`close`, or `using`). Needs `--allow-ffi`.
 */
export function holdRequestedMany(
  libc: Libc,
  devicesDir: string,
  stateFile: string,
  devices: readonly DevicePath[],
  value: boolean,
  limit = MAX_HELD,
): HeldFlags {
  let maxHeld = limit;
  let sized = false;
  const files = new FlagFiles(libc, devicesDir);
  const flags: (boolean | KernelError)[] = new Array(devices.length);
  const held = new Int32Array(devices.length).fill(-1);
  let holding = 0;
  const close = () => {
    files.release();
    for (let index = 0; index < held.length && holding > 0; index++) {
      if (held[index]! >= 0) {
        libc.symbols.close(held[index]!);
        held[index] = -1;
        holding--;
      }
    }
  };
  try {
    for (let index = 0; index < devices.length; index++) {
      const device = devices[index]!;
      const refused = files.check(device, "read");
      const fd = refused ? -1 : files.open(device, O_RDWR);
      if (fd < 0) {
        let flag = refused ?? files.readByPath(device);
        if (
          !refused && typeof flag !== "boolean" && holding > 0 &&
          (flag.errno === "EMFILE" || flag.errno === "ENFILE")
        ) {
          // Out of file descriptors (a low RLIMIT_NOFILE): give the held files back, hold
          // no more (their devices are written by path), and read again. (A misread errno
          // only makes this slower, or the read a refusal: nothing is written wrongly.)
          close();
          maxHeld = 0;
          flag = files.readByPath(device);
        }
        flags[index] = flag;
        continue;
      }
      if (!sized) {
        sized = true;
        reserveDescriptors(libc, fd, Math.min(devices.length - index, maxHeld));
      }
      const flag = files.read(fd, device);
      flags[index] = flag;
      if (flag === !value && holding < maxHeld) {
        held[index] = fd;
        holding++;
      } else {
        libc.symbols.close(fd);
      }
    }
  } catch (error) {
    close();
    throw error;
  }
  // Opened again by writes by path; held files need no directory.
  files.release();
  return {
    flags,
    write(indexes) {
      const outcomes: (KernelError | Error | null)[] = new Array(indexes.length);
      const written: DevicePath[] = new Array(indexes.length);
      for (let at = 0; at < indexes.length; at++) {
        const index = indexes[at]!;
        const device = devices[index]!;
        written[at] = device;
        const fd = held[index] ?? -1;
        if (fd < 0) {
          outcomes[at] = files.writeByPath(device, value);
          continue;
        }
        outcomes[at] = files.write(fd, device, value);
        libc.symbols.close(fd);
        held[index] = -1;
        holding--;
      }
      files.release();
      return files.finishWrites(outcomes, written, stateFile, value);
    },
    close,
    [Symbol.dispose]: close,
  };
}

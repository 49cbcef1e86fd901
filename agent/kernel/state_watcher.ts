/**
 * Watching the RFC v1 `state` attribute: poll(2) for the kernel's wake-up
 * (sysfs_notify) combined with a bounded re-read, so a lost wake-up — RFC v1
 * notifies `/sys/kernel/state`, not `/sys/kernel/liveupdate/state` — delays a
 * change by at most the interval and never hangs.
 *
 * The loop, as kernfs expects it: read the attribute from offset 0 (which re-arms
 * the wake-up), poll for POLLPRI|POLLERR with the interval as timeout, read again.
 * The poll runs on a worker thread (a nonblocking FFI call) and cannot be
 * interrupted, so the poll set also holds an eventfd that cancellation writes to:
 * aborting returns at once and closes both descriptors.
 *
 * @module
 */

import { cString, type Libc } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { LuoState, ObservedVia, StateObservation } from "./kernel.ts";
import { KernelError } from "./kernel_error.ts";
import { kernelFailure } from "./kernel_failure.ts";
import { parseState } from "./contents.ts";

const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const POLLIN = 0x1;
const POLLPRI = 0x2;
const POLLERR = 0x8;
const POLLNVAL = 0x20;
/** sysfs attributes are at most a page. */
const READ_SIZE = 4096;
/** Wake-ups in a row without a change after which the attribute's wake-ups are ignored. */
const SPURIOUS_LIMIT = 1000;

/** An OS error as Deno reports one: a message and the errno name as `code`. */
class OsError extends Error {
  override name = "OsError";
  constructor(readonly code: string, call: string) {
    super(`${call} failed with ${code}`);
  }
}

/** Options of {@link watchStateFile}. */
export interface StateWatcherOptions {
  /** The libc binding (the caller owns it and closes it after the watch ends). */
  libc: Libc;
  /** The `state` attribute. */
  file: string;
  /** The longest a change may go unnoticed without a wake-up, in ms (≥ 1). */
  interval: number;
  /** Ends the iteration (quietly) and releases the descriptors. */
  signal?: AbortSignal;
  /** Told when the watcher stops trusting the file's wake-ups. */
  log?: Logger;
}

/**
 * Yields the state of `options.file` at once (`via: "initial"`), then each change,
 * with how it was noticed, until `options.signal` aborts. Throws KernelError if the
 * file cannot be opened or read, or holds something that is not a state. Needs
 * `--allow-ffi`.
 */
export async function* watchStateFile(
  options: StateWatcherOptions,
): AsyncGenerator<StateObservation, void, undefined> {
  const { libc, file, signal } = options;
  if (!(options.interval >= 1)) throw new RangeError(`Watch interval ${options.interval} < 1 ms`);
  const interval = Math.min(Math.round(options.interval), 2 ** 31 - 1);
  if (signal?.aborted) return;
  const sym = libc.symbols;

  // O_NONBLOCK: a FIFO planted where the attribute should be opens at once (and its
  // pread fails with ESPIPE) instead of blocking the agent until a writer appears.
  // sysfs ignores the flag: reads and poll(2) behave the same.
  const fd = sym.open(cString(file), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
  if (fd < 0) {
    throw kernelFailure(new OsError(libc.errnoName(), "open"), { file, operation: "open" });
  }
  const wakeFd = sym.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd < 0) {
    const error = new OsError(libc.errnoName(), "eventfd");
    sym.close(fd);
    throw new KernelError(`Could not create the watcher's wake-up descriptor: ${error.message}.`, {
      errno: error.code,
      file,
      operation: "poll",
      cause: error,
    });
  }
  const one = new Uint8Array(new BigUint64Array([1n]).buffer);
  let pending: Promise<number> | undefined;
  let released = false;
  const wake = () => void sym.write(wakeFd, one, 8n);
  const release = () => {
    if (released) return;
    released = true;
    signal?.removeEventListener("abort", onAbort);
    sym.close(wakeFd);
    sym.close(fd);
  };
  // A poll in flight is woken and the loop releases; a consumer that holds the
  // iterator without asking for more gets the descriptors released right away.
  const onAbort = () => pending ? wake() : release();
  signal?.addEventListener("abort", onAbort);

  // struct pollfd { int fd; short events; short revents; } × 2, native byte order.
  const pollSet = new Int32Array(4);
  const events = new Int16Array(pollSet.buffer);
  const pollBytes = new Uint8Array(pollSet.buffer);
  const readBuffer = new Uint8Array(READ_SIZE);
  const decoder = new TextDecoder();
  let trustWakeUps = true;

  const read = (): LuoState => {
    const count = Number(sym.pread(fd, readBuffer, BigInt(READ_SIZE), 0n));
    if (count < 0) {
      throw kernelFailure(new OsError(libc.errnoName(), "pread"), { file, operation: "read" });
    }
    return parseState(decoder.decode(readBuffer.subarray(0, count)), file);
  };

  try {
    let last = read();
    yield { state: last, via: "initial" };
    let spurious = 0;
    while (!signal?.aborted) {
      pollSet[0] = trustWakeUps ? fd : -1;
      events[2] = POLLPRI | POLLERR;
      events[3] = 0;
      pollSet[2] = wakeFd;
      events[6] = POLLIN;
      events[7] = 0;
      pending = sym.poll(pollBytes, 2n, interval);
      const ready = await pending;
      pending = undefined;
      if (signal?.aborted) break;
      if (ready < 0) {
        // errno of the worker thread is out of reach: repeat the poll here, without
        // waiting, to tell a passing EINTR from a real failure.
        if (sym.poll_now(pollBytes, 2n, 0) < 0) {
          throw kernelFailure(new OsError(libc.errnoName(), "poll"), { file, operation: "poll" });
        }
      }
      const revents = events[3]!;
      if (revents & POLLNVAL) {
        throw kernelFailure(new OsError("EBADF", "poll"), { file, operation: "poll" });
      }
      const via: ObservedVia = revents & (POLLPRI | POLLERR) ? "notification" : "interval";
      const state = read();
      if (state !== last) {
        last = state;
        spurious = 0;
        yield { state, via };
      } else if (via === "notification" && ++spurious >= SPURIOUS_LIMIT) {
        trustWakeUps = false;
        options.log?.warning(
          `${file} signalled ${SPURIOUS_LIMIT} wake-ups in a row without a change; ignoring its ` +
            `wake-ups and re-reading it every ${interval} ms.`,
          { file },
        );
      }
    }
  } finally {
    if (pending) {
      wake();
      await pending.catch(() => 0);
      pending = undefined;
    }
    release();
  }
}

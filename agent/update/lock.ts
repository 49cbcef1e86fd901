/**
 * One live-update operation at a time: an exclusive flock(2) on
 * `<runtime_dir>/update.lock`. The kernel drops the lock when the process ends, so
 * it survives nothing but the process — a killed agent never leaves a stale lock.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import { cString, type Libc } from "../host/mod.ts";

const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_CLOEXEC = 0o2000000;
const O_NOFOLLOW = 0o400000;
const LOCK_EX = 2;
const LOCK_NB = 4;

/** Another live-update operation holds the lock. */
export class BusyError extends AgentError {
  override name = "BusyError";

  constructor(message: string) {
    super(message, { exitCode: ExitCode.Busy });
  }
}

/** A held update lock; release it with `release()` or `using`. */
export interface UpdateLock extends Disposable {
  readonly path: string;
  release(): void;
}

/**
 * Takes the update lock at `path` without waiting. Throws {@link BusyError} naming
 * the holder's pid when another process holds it. Needs `--allow-ffi`.
 */
export function acquireUpdateLock(libc: Libc, path: string): UpdateLock {
  const { symbols } = libc;
  const fd = symbols.open(cString(path), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600);
  if (fd < 0) {
    throw new AgentError(
      `Cannot open the update lock "${path}": ${libc.errnoName()}. Check paths.runtime_dir ` +
        "and that the agent runs as root.",
    );
  }
  if (symbols.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = libc.errnoName();
    const buffer = new Uint8Array(32);
    const count = Number(symbols.pread(fd, buffer, 32n, 0n));
    symbols.close(fd);
    const holder = new TextDecoder().decode(buffer.subarray(0, Math.max(count, 0))).trim();
    if (errno === "EAGAIN") {
      throw new BusyError(
        `Another live-update operation${holder ? ` (pid ${holder})` : ""} holds "${path}". ` +
          "Wait for it to finish (see 'liveupdate-agent status') and try again.",
      );
    }
    throw new AgentError(`Cannot lock "${path}": ${errno}.`);
  }
  const pid = new TextEncoder().encode(`${symbols.getpid()}\n`);
  symbols.ftruncate(fd, 0n);
  symbols.pwrite(fd, pid, BigInt(pid.length), 0n);
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    symbols.close(fd);
  };
  return { path, release, [Symbol.dispose]: release };
}

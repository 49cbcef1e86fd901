/**
 * `/dev/liveupdate`, the mainline live-update device (Linux 6.19+). It admits one
 * opener at a time and systemd itself opens it at boot and just before a kexec,
 * so the agent opens it only for the moment of a request (open, act, close) and
 * retries a busy device for a bounded time. Sessions outlive the open: their fds
 * stay valid after the device is closed.
 *
 * @module
 */

import type { Clock } from "../../host/host.ts";
import { cString, type Libc } from "../../host/libc.ts";
import { KernelUnsupportedError } from "../kernel_error.ts";
import { decodeSessionFd, encodeSessionArgument, IOCTL, sessionNameProblem } from "./abi.ts";
import { LiveupdateError, liveupdateError } from "./errors.ts";
import { Session } from "./session.ts";

const O_RDWR = 0o2;
const O_CLOEXEC = 0o2000000;

/** Options of {@link LiveupdateDevice}. */
export interface LiveupdateDeviceOptions {
  libc: Libc;
  clock: Clock;
  /** The device node (config `kernel.device`). */
  path: string;
  /** How long a busy device is retried before giving up, in ms. */
  busyTimeout: number;
  /** Pause between retries of a busy device, in ms (default 50). */
  busyRetryInterval?: number;
}

/** The device while the agent holds it open, inside {@link LiveupdateDevice.use}. */
export interface OpenDevice {
  /**
   * Creates an outgoing session `name` (1–63 bytes, unique in this boot). Throws
   * LiveupdateError (EEXIST: name taken).
   */
  createSession(name: string): Session;
  /**
   * Retrieves the incoming session `name` handed over by the previous kernel.
   * Throws LiveupdateError (ENOENT: none of that name; EINVAL: already retrieved).
   */
  retrieveSession(name: string): Session;
}

/** The mainline live-update device. */
export class LiveupdateDevice {
  readonly path: string;
  readonly #options: LiveupdateDeviceOptions;

  constructor(options: LiveupdateDeviceOptions) {
    this.#options = options;
    this.path = options.path;
  }

  /**
   * Opens the device (retrying EBUSY up to `busyTimeout`), runs `action`, and
   * closes the device again, also when `action` throws. Throws
   * KernelUnsupportedError when the device does not exist, LiveupdateError when
   * it cannot be opened. Needs read+write access to the device and `--allow-ffi`.
   */
  async use<T>(action: (device: OpenDevice) => T | Promise<T>): Promise<T> {
    const fd = await this.#open();
    try {
      return await action(this.#handle(fd));
    } finally {
      this.#options.libc.symbols.close(fd);
    }
  }

  /** Creates one outgoing session (open, create, close). */
  createSession(name: string): Promise<Session> {
    return this.use((device) => device.createSession(name));
  }

  /** Retrieves one incoming session (open, retrieve, close). */
  retrieveSession(name: string): Promise<Session> {
    return this.use((device) => device.retrieveSession(name));
  }

  async #open(): Promise<number> {
    const { libc, clock, busyTimeout } = this.#options;
    const interval = this.#options.busyRetryInterval ?? 50;
    const deadline = clock.monotonic() + busyTimeout;
    const path = cString(this.path);
    let attempts = 0;
    while (true) {
      attempts++;
      const fd = libc.symbols.open(path, O_RDWR | O_CLOEXEC, 0);
      if (fd >= 0) return fd;
      const errno = libc.errnoName();
      if (errno === "ENOENT" || errno === "ENODEV" || errno === "ENXIO") {
        throw new KernelUnsupportedError(
          `${this.path} does not exist: the running kernel has no mainline live update ` +
            '(CONFIG_LIVEUPDATE) or was booted without "kho=on liveupdate=on".',
          [this.path],
        );
      }
      if (errno === "EBUSY" && clock.monotonic() + interval <= deadline) {
        await clock.sleep(interval);
        continue;
      }
      const error = liveupdateError(errno, { request: "open", file: this.path });
      if (errno === "EBUSY") {
        throw new LiveupdateError(
          `${error.message} Gave up after ${attempts} attempts in ${busyTimeout} ms.`,
          { errno, file: this.path, request: "open", exitCode: error.exitCode },
        );
      }
      throw error;
    }
  }

  #handle(fd: number): OpenDevice {
    const { libc } = this.#options;
    const request = (
      kind: "create-session" | "retrieve-session",
      name: string,
    ): Session => {
      const problem = sessionNameProblem(name);
      if (problem !== undefined) {
        throw new LiveupdateError(
          `Session name ${JSON.stringify(name)} cannot be used: ${problem}. Use 1 to 63 bytes ` +
            "without NUL.",
          { errno: "EINVAL", file: this.path, request: kind, session: name },
        );
      }
      const argument = encodeSessionArgument(name);
      const number = kind === "create-session" ? IOCTL.createSession : IOCTL.retrieveSession;
      if (libc.symbols.ioctl(fd, BigInt(number), argument) < 0) {
        throw liveupdateError(libc.errnoName(), { request: kind, file: this.path, session: name });
      }
      return new Session(
        libc,
        decodeSessionFd(argument),
        name,
        kind === "create-session" ? "outgoing" : "incoming",
      );
    };
    return {
      createSession: (name) => request("create-session", name),
      retrieveSession: (name) => request("retrieve-session", name),
    };
  }
}

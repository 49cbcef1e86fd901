/**
 * sd_notify(3) for `Type=notify` services: READY=1, STATUS=…, STOPPING=1,
 * RELOADING=1 and WATCHDOG=1, sent as unix datagrams to `$NOTIFY_SOCKET` through
 * libc (Deno's own datagram sockets are unstable). No `systemd-notify` subprocess:
 * the manager attributes a message to a service by the sender's PID, which must be
 * the service's main process — the agent itself.
 *
 * `$NOTIFY_SOCKET` is an absolute path or, starting with "@", a socket in the
 * abstract namespace. Without it (not started by systemd) every call does nothing.
 *
 * @module
 */

import type { Environment } from "../host/mod.ts";
import type { Libc } from "../host/libc.ts";
import { SystemdError } from "./systemd_error.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const SUN_PATH_MAX = 108;

/** Sending a notification failed. */
export class NotifyError extends SystemdError {
  override name = "NotifyError";
  /** The errno name, when a system call failed. */
  readonly errno: string | undefined;

  constructor(message: string, errno?: string) {
    super(message);
    this.errno = errno;
  }
}

/** Tells the service manager about the service's state. */
export interface Notifier {
  /** Whether a notify socket is set (the process runs as a Type=notify service). */
  readonly enabled: boolean;
  /** READY=1 (start-up finished), with an optional STATUS= line. */
  ready(status?: string): void;
  /** STATUS=…: one line shown by `systemctl status`. */
  status(text: string): void;
  /** STOPPING=1 (shutting down), with an optional STATUS= line. */
  stopping(status?: string): void;
  /** RELOADING=1 (reloading the configuration). */
  reloading(): void;
  /** WATCHDOG=1: the keep-alive ping. */
  watchdog(): void;
  /**
   * How often to ping the watchdog (half of WatchdogSec=), in milliseconds, or
   * undefined when the watchdog is off for this process.
   */
  watchdogIntervalMs(): number | undefined;
  /** Sends raw `KEY=VALUE` assignments. */
  send(assignments: Readonly<Record<string, string>>): void;
  /** Closes the socket. */
  close(): void;
}

/** The sockaddr_un of a NOTIFY_SOCKET value and its length. */
export function notifyAddress(value: string): { address: Uint8Array<ArrayBuffer>; length: number } {
  const abstract = value.startsWith("@");
  if (!abstract && !value.startsWith("/")) {
    throw new NotifyError(
      `NOTIFY_SOCKET is "${value}", which is neither an absolute path nor an abstract socket ` +
        '("@name"). The agent supports only those; check the unit\'s environment.',
    );
  }
  const name = new TextEncoder().encode(abstract ? value.slice(1) : value);
  if (name.includes(0) || name.length + 1 > SUN_PATH_MAX) {
    throw new NotifyError(`NOTIFY_SOCKET "${value}" is not a usable socket address.`);
  }
  const address = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  // Abstract: a leading NUL and no terminating one; path: NUL-terminated.
  address.set(name, abstract ? 3 : 2);
  return { address, length: 2 + 1 + name.length };
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ").trim();
}

/**
 * A notifier for `env`'s NOTIFY_SOCKET. `libc` is called on the first message only
 * (reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`; needs `--allow-ffi` to
 * send).
 */
export function createNotifier(env: Environment, libc: () => Libc): Notifier {
  const socketPath = env.get("NOTIFY_SOCKET");
  let fd = -1;
  let target: { address: Uint8Array<ArrayBuffer>; length: number } | undefined;

  const send = (assignments: Readonly<Record<string, string>>) => {
    if (!socketPath) return;
    target ??= notifyAddress(socketPath);
    const c = libc();
    if (fd < 0) {
      fd = c.symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        const errno = c.errnoName();
        throw new NotifyError(`Cannot create a socket for sd_notify: ${errno}.`, errno);
      }
    }
    const text = Object.entries(assignments).map(([key, value]) => `${key}=${value}`).join("\n");
    const message = new TextEncoder().encode(text);
    const sent = c.symbols.sendto(
      fd,
      message,
      BigInt(message.length),
      MSG_NOSIGNAL,
      target.address,
      target.length,
    );
    if (Number(sent) < 0) {
      const errno = c.errnoName();
      throw new NotifyError(
        `Cannot notify the service manager at "${socketPath}": ${errno}. Is the unit Type=notify ` +
          "and the socket reachable?",
        errno,
      );
    }
  };

  const withStatus = (key: string, status?: string) =>
    send(status === undefined ? { [key]: "1" } : { [key]: "1", STATUS: oneLine(status) });

  return {
    enabled: socketPath !== undefined && socketPath !== "",
    ready: (status) => withStatus("READY", status),
    status: (text) => send({ STATUS: oneLine(text) }),
    stopping: (status) => withStatus("STOPPING", status),
    reloading: () => send({ RELOADING: "1" }),
    watchdog: () => send({ WATCHDOG: "1" }),
    watchdogIntervalMs() {
      const usec = Number(env.get("WATCHDOG_USEC"));
      if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
      const pid = env.get("WATCHDOG_PID");
      if (pid !== undefined && Number(pid) !== Deno.pid) return undefined;
      return Math.max(1, Math.floor(usec / 2000));
    },
    send,
    close() {
      if (fd >= 0) libc().symbols.close(fd);
      fd = -1;
    },
  };
}

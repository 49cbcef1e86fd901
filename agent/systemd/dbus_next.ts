/**
 * The real {@link BusConnector}, on the npm package dbus-next. This is the only file
 * that imports dbus-next; swapping the D-Bus library means rewriting this file.
 *
 * dbus-next under Deno: it talks over `node:net` (its native `usocket` helper is not
 * built, so it cannot pass file descriptors, which the agent does not need); it
 * authenticates with EXTERNAL, which reads the uid (`--allow-sys=uid`); connecting
 * needs `--allow-net=unix:SOCKET` and read+write on the socket path. Its own
 * `systemBus()` ignores any address, so the address is always passed explicitly.
 * dbus-next never fails a pending call when the connection drops; this adapter does.
 *
 * @module
 */

import dbus from "dbus-next";
import type { Bus, BusCall, BusConnector, BusSignal } from "./bus.ts";
import { BusCallError, BusConnectError, BusDisconnectedError } from "./systemd_error.ts";

/** How long a call may wait for its reply unless told otherwise (D-Bus's usual 25 s). */
export const DEFAULT_CALL_TIMEOUT_MS = 25_000;

const SIGNAL = 4;

interface Pending {
  reject(error: Error): void;
}

// The parts of dbus-next's (untyped) objects this adapter uses.
interface RawMessage {
  type: number;
  sender: string;
  path: string;
  interface: string;
  member: string;
  body: unknown[];
}
interface RawBus {
  name: string | null;
  call(message: unknown): Promise<RawMessage>;
  on(event: string, listener: (...args: never[]) => void): void;
  once(event: string, listener: (...args: never[]) => void): void;
  disconnect(): void;
  _connection: {
    stream: {
      on(event: string, listener: (...args: never[]) => void): void;
      destroy(): void;
      destroyed: boolean;
    };
  };
}

function parseAddress(address: string): string {
  const path = /^unix:path=(\/[^,;]+)$/.exec(address)?.[1];
  if (path) return `unix:path=${path}`;
  const abstract = /^unix:abstract=([^,;]+)$/.exec(address)?.[1];
  if (abstract) {
    throw new BusConnectError(
      address,
      "abstract-namespace addresses are not supported by the D-Bus library the agent uses",
    );
  }
  throw new BusConnectError(address, 'the address must have the form "unix:path=/ABSOLUTE/PATH"');
}

function errorText(error: unknown): string {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

class DbusNextBus implements Bus {
  readonly disconnected: Promise<BusDisconnectedError>;
  #raw: RawBus;
  #pending = new Set<Pending>();
  #listeners = new Set<(signal: BusSignal) => void>();
  #gone: BusDisconnectedError | undefined;
  #markGone!: (error: BusDisconnectedError) => void;

  constructor(raw: RawBus) {
    this.#raw = raw;
    this.disconnected = new Promise((resolve) => {
      this.#markGone = resolve;
    });
    raw.on("message", (message: never) => {
      const msg = message as RawMessage;
      if (msg.type !== SIGNAL) return;
      const signal: BusSignal = {
        sender: msg.sender,
        path: msg.path,
        interface: msg.interface,
        member: msg.member,
        body: msg.body ?? [],
      };
      for (const listener of this.#listeners) listener(signal);
    });
    raw.on("error", (error: never) => this.#lose(`connection error: ${errorText(error)}`));
    raw._connection.stream.on("close", () => this.#lose("the bus closed the connection"));
  }

  get connected(): boolean {
    return this.#gone === undefined;
  }

  #lose(reason: string): void {
    if (this.#gone) return;
    this.#gone = new BusDisconnectedError(reason);
    for (const pending of this.#pending) pending.reject(this.#gone);
    this.#pending.clear();
    this.#markGone(this.#gone);
  }

  call(call: BusCall, options: { timeoutMs?: number } = {}): Promise<readonly unknown[]> {
    if (this.#gone) return Promise.reject(this.#gone);
    const message = new dbus.Message({
      destination: call.destination,
      path: call.path,
      interface: call.interface,
      member: call.member,
      signature: call.signature ?? "",
      body: [...(call.body ?? [])],
    });
    const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#pending.add(pending);
      const timer = setTimeout(() => {
        this.#pending.delete(pending);
        reject(
          new BusCallError(
            call.member,
            "org.freedesktop.DBus.Error.NoReply",
            `no reply within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const settle = () => {
        clearTimeout(timer);
        this.#pending.delete(pending);
      };
      let sent: Promise<RawMessage>;
      try {
        sent = this.#raw.call(message);
      } catch (error) {
        settle();
        reject(new BusDisconnectedError(errorText(error), { cause: error }));
        return;
      }
      sent.then(
        (reply) => {
          if (!this.#pending.has(pending)) return;
          settle();
          resolve(reply.body ?? []);
        },
        (error: { type?: string; text?: string }) => {
          if (!this.#pending.has(pending)) return;
          settle();
          reject(
            new BusCallError(
              call.member,
              error.type ?? "org.freedesktop.DBus.Error.Failed",
              error.text ?? String(error),
              { cause: error },
            ),
          );
        },
      );
    });
  }

  onSignal(listener: (signal: BusSignal) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (!this.#gone) this.#lose("closed by the agent");
    // Not disconnect() (a half-close): a peer that never answers would keep the
    // socket open, and its close event would never come.
    const stream = this.#raw._connection.stream;
    if (!stream.destroyed) {
      this.#raw.disconnect();
      stream.destroy();
    }
    // Wait for the socket to be released (the stream's close event), but never forever.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#closed,
      new Promise((resolve) => (timer = setTimeout(resolve, 5000))),
    ]);
    clearTimeout(timer);
  }

  #closed = new Promise<void>((resolve) => {
    queueMicrotask(() => this.#raw._connection.stream.on("close", () => resolve()));
  });
}

/**
 * The real connector. Needs `--allow-net=unix:SOCKET`, read and write on the socket
 * path, and `--allow-sys=uid`.
 */
export const dbusNextConnector: BusConnector = {
  connect(address, options = {}) {
    let normalized: string;
    try {
      normalized = parseAddress(address);
    } catch (error) {
      return Promise.reject(error);
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      let raw: RawBus;
      try {
        raw = dbus.sessionBus({ busAddress: normalized }) as unknown as RawBus;
      } catch (error) {
        reject(new BusConnectError(address, errorText(error), { cause: error }));
        return;
      }
      let done = false;
      const bus = new DbusNextBus(raw);
      const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
      const fail = (reason: string, cause?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        bus.close().finally(() => reject(new BusConnectError(address, reason, { cause })));
      };
      raw.once("connect", () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(bus);
      });
      bus.disconnected.then((error) => fail(error.reason, error));
      raw.on("error", (error: never) => fail(errorText(error), error));
    });
  },
};

/**
 * The small D-Bus interface the systemd layer needs: method calls, signals, and
 * knowing when the connection is gone. `agent/main.ts` creates the real connector
 * (dbus-next, in `dbus_next.ts`); tests pass the same connector pointed at a private
 * manager's bus, or an in-memory fake.
 *
 * @module
 */

import type { BusDisconnectedError } from "./systemd_error.ts";

/** A D-Bus method call. */
export interface BusCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  /** The D-Bus signature of `body` ("ss"); empty or absent for no arguments. */
  signature?: string;
  body?: readonly unknown[];
}

/** A received D-Bus signal. */
export interface BusSignal {
  sender: string;
  path: string;
  interface: string;
  member: string;
  body: readonly unknown[];
}

/** A D-Bus variant as the bus delivers it (for example from Properties.Get). */
export interface BusVariant {
  signature: string;
  value: unknown;
}

/** One connection to a bus. */
export interface Bus {
  /**
   * Sends a method call and resolves with the reply's body. Each call is written to
   * the socket at once, in call order, so many calls in a row are pipelined. Rejects
   * with `BusCallError` (an error reply, or no reply within `timeoutMs`) or
   * `BusDisconnectedError` (the connection went away before the reply).
   */
  call(call: BusCall, options?: { timeoutMs?: number }): Promise<readonly unknown[]>;
  /** Registers a signal listener; returns the function that removes it. */
  onSignal(listener: (signal: BusSignal) => void): () => void;
  /** Resolves (never rejects) when the connection is gone, with the reason. */
  readonly disconnected: Promise<BusDisconnectedError>;
  /** Whether the connection is still up. */
  readonly connected: boolean;
  /**
   * Closes the connection and resolves once the socket is released; pending calls
   * reject with `BusDisconnectedError`.
   */
  close(): Promise<void>;
}

/** Opens bus connections. */
export interface BusConnector {
  /**
   * Connects to `address` ("unix:path=/run/dbus/system_bus_socket"), authenticates
   * and registers on the bus. Rejects with `BusConnectError`.
   */
  connect(address: string, options?: { timeoutMs?: number }): Promise<Bus>;
}

/** A connector for hosts that must not reach any bus (unit tests). */
export const noBusConnector: BusConnector = {
  connect(address) {
    return Promise.reject(
      new Error(`This host has no D-Bus connector; refusing to connect to "${address}".`),
    );
  },
};

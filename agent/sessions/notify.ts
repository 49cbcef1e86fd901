/**
 * sd_notify(3) for the broker's Type=notify unit: one datagram to
 * $NOTIFY_SOCKET ("READY=1", "STATUS=…"), through libc FFI. Does nothing when
 * not started by systemd.
 *
 * @module
 */

import type { Libc } from "../host/libc.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;

/**
 * Sends `state` to the service manager at `socketPath` (the value of
 * NOTIFY_SOCKET; "@…" is an abstract address). Returns whether it was sent.
 */
export function notify(libc: Libc, socketPath: string | undefined, state: string): boolean {
  if (!socketPath) return false;
  const path = new TextEncoder().encode(socketPath);
  if (path.length === 0 || path.length >= 108) return false;
  if (path[0] === 0x40) path[0] = 0; // "@name": abstract namespace
  const address = new Uint8Array(2 + path.length + (path[0] === 0 ? 0 : 1));
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(path, 2);
  const fd = libc.symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  try {
    const message = new TextEncoder().encode(state);
    return Number(
      libc.symbols.sendto(
        fd,
        message,
        BigInt(message.length),
        MSG_NOSIGNAL,
        address,
        address.length,
      ),
    ) === message.length;
  } finally {
    libc.symbols.close(fd);
  }
}

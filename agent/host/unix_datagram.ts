/**
 * Sending one datagram to a unix socket by path — what journald's native protocol
 * and sd_notify need, and Deno offers only behind an unstable flag. A path starting
 * with '@' names a socket in the abstract namespace.
 *
 * @module
 */

import type { Libc } from "./libc.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const PATH_MAX = 108;

/** A `struct sockaddr_un` for `path`, and its length. Throws for a path too long. */
export function sockaddrUn(path: string): { address: Uint8Array<ArrayBuffer>; length: number } {
  const bytes = new TextEncoder().encode(path);
  const abstract = path.startsWith("@");
  if (bytes.length >= PATH_MAX || bytes.length === 0) {
    throw new RangeError(`Socket path "${path}" is empty or longer than ${PATH_MAX - 1} bytes`);
  }
  const address = new Uint8Array(2 + PATH_MAX);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(bytes, 2);
  if (abstract) address[2] = 0;
  // Abstract names count exactly their bytes; paths include the terminating NUL.
  return { address, length: 2 + bytes.length + (abstract ? 0 : 1) };
}

/**
 * Sends `payload` as one datagram to the unix socket at `path`. Returns undefined
 * on success, or the errno name (ENOENT, ECONNREFUSED, EMSGSIZE, …). Needs
 * `--allow-ffi`.
 */
export function sendDatagram(
  libc: Libc,
  path: string,
  payload: Uint8Array<ArrayBuffer>,
): string | undefined {
  const { address, length } = sockaddrUn(path);
  const fd = libc.symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return libc.errnoName();
  try {
    const sent = libc.symbols.sendto(fd, payload, BigInt(payload.length), 0, address, length);
    return sent < 0 ? libc.errnoName() : undefined;
  } finally {
    libc.symbols.close(fd);
  }
}

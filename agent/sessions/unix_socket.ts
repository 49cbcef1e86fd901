/**
 * Unix stream sockets that can pass file descriptors (SCM_RIGHTS), through libc
 * FFI: Deno's own unix sockets cannot pass fds. Waiting is done with poll(2) on
 * a worker thread (the nonblocking FFI call), the transfer itself with
 * synchronous calls so errno is read on the thread that set it. Every wait also
 * polls a private wake-up pipe, so closing a socket ends a pending wait at once.
 *
 * Layouts are x86-64/arm64 Linux (LP64): sockaddr_un 110 bytes, msghdr 56,
 * iovec 16, cmsghdr 16 + data, ucred 12.
 *
 * @module
 */

import type { Libc } from "../host/libc.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const SO_PEERCRED = 17;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CTRUNC = 0x8;
const MSG_CMSG_CLOEXEC = 0x40000000;
const POLLIN = 0x1;
const POLLOUT = 0x4;
const SUN_PATH_MAX = 108;
const MAX_FDS = 16;
const RECEIVE_BUFFER = 64 * 1024;

/** A socket call failed; `errno` names why. */
export class SocketError extends Error {
  override name = "SocketError";
  constructor(message: string, readonly errno: string) {
    super(message);
  }
}

function fail(libc: Libc, what: string): never {
  const errno = libc.errnoName();
  throw new SocketError(`${what} failed: ${errno}`, errno);
}

function pointerValue(buffer: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

function sockaddr(path: string): Uint8Array<ArrayBuffer> {
  const encoded = new TextEncoder().encode(path);
  if (encoded.length >= SUN_PATH_MAX) {
    throw new SocketError(`Socket path ${JSON.stringify(path)} is longer than 107 bytes`, "EINVAL");
  }
  const address = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(encoded, 2);
  return address;
}

/** A wake-up pipe: {@link Waker.wake} ends every poll that includes its read end. */
class Waker {
  readonly read: number;
  readonly write: number;
  constructor(private readonly libc: Libc) {
    const fds = new Int32Array(2);
    if (libc.symbols.pipe2(new Uint8Array(fds.buffer), O_CLOEXEC | O_NONBLOCK) < 0) {
      fail(libc, "pipe2");
    }
    this.read = fds[0]!;
    this.write = fds[1]!;
  }
  wake(): void {
    this.libc.symbols.write(this.write, new Uint8Array([1]), 1n);
  }
  close(): void {
    this.libc.symbols.close(this.read);
    this.libc.symbols.close(this.write);
  }
}

/**
 * Waits until `fd` is ready for `events` or `waker` fires. Returns false when
 * woken (the caller is closing).
 */
async function waitFor(libc: Libc, fd: number, events: number, waker: Waker): Promise<boolean> {
  const fds = new Uint8Array(16);
  const view = new DataView(fds.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  view.setInt32(8, waker.read, true);
  view.setInt16(12, POLLIN, true);
  while (true) {
    const count = await libc.symbols.poll(fds, 2n, -1);
    if (count < 0) continue; // EINTR (errno is not readable from the worker thread)
    if (view.getInt16(14, true) !== 0) return false;
    if (view.getInt16(6, true) !== 0) return true;
  }
}

/** The peer of a connection (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** One message received: its bytes and the fds that came with them. */
export interface Received {
  data: Uint8Array;
  fds: number[];
}

/** A connected unix stream socket. */
export class UnixConnection {
  #fd: number;
  readonly #libc: Libc;
  readonly #waker: Waker;
  #busy = 0;
  #idle: (() => void) | undefined;

  /** Wraps a connected, nonblocking socket `fd`; the connection owns it. */
  constructor(libc: Libc, fd: number) {
    this.#libc = libc;
    this.#fd = fd;
    this.#waker = new Waker(libc);
  }

  /** Whether the connection is still open. */
  get open(): boolean {
    return this.#fd >= 0;
  }

  /** The peer's pid, uid and gid, as the kernel saw them at connect. */
  peer(): PeerCredentials {
    const credentials = new Uint8Array(12);
    const length = new Uint32Array([12]);
    const result = this.#libc.symbols.getsockopt(
      this.#fd,
      SOL_SOCKET,
      SO_PEERCRED,
      credentials,
      new Uint8Array(length.buffer),
    );
    if (result < 0) fail(this.#libc, "getsockopt(SO_PEERCRED)");
    const view = new DataView(credentials.buffer);
    return {
      pid: view.getInt32(0, true),
      uid: view.getUint32(4, true),
      gid: view.getUint32(8, true),
    };
  }

  async #track<T>(work: () => Promise<T>): Promise<T> {
    this.#busy++;
    try {
      return await work();
    } finally {
      if (--this.#busy === 0) this.#idle?.();
    }
  }

  /**
   * Sends all of `data`; `fds` (if any) travel with its first byte. Throws
   * SocketError (EPIPE/ECONNRESET when the peer is gone), or when closed.
   */
  send(data: Uint8Array<ArrayBuffer>, fds: readonly number[] = []): Promise<void> {
    return this.#track(async () => {
      let offset = 0;
      let pendingFds = [...fds];
      while (offset < data.length || pendingFds.length > 0) {
        if (this.#fd < 0) throw new SocketError("The connection is closed", "EBADF");
        const chunk = data.subarray(offset);
        const sent = this.#sendOnce(chunk, pendingFds);
        if (sent === "again") {
          if (!await waitFor(this.#libc, this.#fd, POLLOUT, this.#waker)) {
            throw new SocketError("The connection was closed while sending", "EBADF");
          }
          continue;
        }
        pendingFds = [];
        offset += sent;
      }
    });
  }

  #sendOnce(chunk: Uint8Array<ArrayBuffer>, fds: readonly number[]): number | "again" {
    const iov = new Uint8Array(16);
    const iovView = new DataView(iov.buffer);
    iovView.setBigUint64(0, pointerValue(chunk), true);
    iovView.setBigUint64(8, BigInt(chunk.length), true);
    const message = new Uint8Array(56);
    const view = new DataView(message.buffer);
    view.setBigUint64(16, pointerValue(iov), true);
    view.setBigUint64(24, 1n, true);
    let control: Uint8Array<ArrayBuffer> | undefined;
    if (fds.length > 0) {
      const dataLength = 4 * fds.length;
      control = new Uint8Array(16 + ((dataLength + 7) & ~7));
      const controlView = new DataView(control.buffer);
      controlView.setBigUint64(0, BigInt(16 + dataLength), true);
      controlView.setInt32(8, SOL_SOCKET, true);
      controlView.setInt32(12, SCM_RIGHTS, true);
      fds.forEach((fd, index) => controlView.setInt32(16 + 4 * index, fd, true));
      view.setBigUint64(32, pointerValue(control), true);
      view.setBigUint64(40, BigInt(control.length), true);
    }
    const sent = Number(
      this.#libc.symbols.sendmsg(this.#fd, message, MSG_NOSIGNAL | MSG_DONTWAIT),
    );
    if (sent >= 0) return sent;
    const errno = this.#libc.errnoName();
    if (errno === "EAGAIN" || errno === "EINTR") return "again";
    throw new SocketError(`sendmsg failed: ${errno}`, errno);
  }

  /**
   * Waits for data. Returns null at end of stream or when the connection is
   * closed meanwhile. Received fds are close-on-exec and owned by the caller.
   */
  receive(): Promise<Received | null> {
    return this.#track(async () => {
      while (true) {
        if (this.#fd < 0) return null;
        const received = this.#receiveOnce();
        if (received === "again") {
          if (!await waitFor(this.#libc, this.#fd, POLLIN, this.#waker)) return null;
          continue;
        }
        return received;
      }
    });
  }

  #receiveOnce(): Received | null | "again" {
    const data = new Uint8Array(RECEIVE_BUFFER);
    const iov = new Uint8Array(16);
    const iovView = new DataView(iov.buffer);
    iovView.setBigUint64(0, pointerValue(data), true);
    iovView.setBigUint64(8, BigInt(data.length), true);
    const control = new Uint8Array(16 + 4 * MAX_FDS);
    const message = new Uint8Array(56);
    const view = new DataView(message.buffer);
    view.setBigUint64(16, pointerValue(iov), true);
    view.setBigUint64(24, 1n, true);
    view.setBigUint64(32, pointerValue(control), true);
    view.setBigUint64(40, BigInt(control.length), true);
    const count = Number(
      this.#libc.symbols.recvmsg_now(this.#fd, message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC),
    );
    if (count < 0) {
      const errno = this.#libc.errnoName();
      if (errno === "EAGAIN" || errno === "EINTR") return "again";
      if (errno === "ECONNRESET") return null;
      throw new SocketError(`recvmsg failed: ${errno}`, errno);
    }
    const fds: number[] = [];
    const controlLength = Number(view.getBigUint64(40, true));
    const controlView = new DataView(control.buffer);
    let at = 0;
    while (at + 16 <= controlLength) {
      const length = Number(controlView.getBigUint64(at, true));
      if (length < 16) break;
      if (
        controlView.getInt32(at + 8, true) === SOL_SOCKET &&
        controlView.getInt32(at + 12, true) === SCM_RIGHTS
      ) {
        for (let i = 16; i + 4 <= length; i += 4) fds.push(controlView.getInt32(at + i, true));
      }
      at += (length + 7) & ~7;
    }
    if ((view.getInt32(48, true) & MSG_CTRUNC) !== 0) {
      for (const fd of fds) this.#libc.symbols.close(fd);
      throw new SocketError(`More than ${MAX_FDS} fds arrived in one message`, "EMSGSIZE");
    }
    if (count === 0 && fds.length === 0) return null;
    return { data: data.slice(0, count), fds };
  }

  /** Closes the connection; pending sends and receives end (receive yields null). */
  async close(): Promise<void> {
    if (this.#fd < 0) return;
    this.#waker.wake();
    if (this.#busy > 0) await new Promise<void>((resolve) => this.#idle = resolve);
    this.#libc.symbols.close(this.#fd);
    this.#fd = -1;
    this.#waker.close();
  }
}

/** A listening unix stream socket. */
export class UnixListener {
  #fd: number;
  readonly #libc: Libc;
  readonly #waker: Waker;
  #accepting: Promise<unknown> | undefined;
  readonly path: string;

  private constructor(libc: Libc, fd: number, path: string) {
    this.#libc = libc;
    this.#fd = fd;
    this.path = path;
    this.#waker = new Waker(libc);
  }

  /**
   * Listens on `path` with file mode `mode` (set before anyone can connect). A
   * stale socket file at `path` is replaced. Needs write access to its folder.
   */
  static listen(libc: Libc, path: string, mode: number): UnixListener {
    const fd = libc.symbols.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(libc, "socket(AF_UNIX)");
    try {
      try {
        if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      const address = sockaddr(path);
      if (libc.symbols.bind(fd, address, address.length) < 0) fail(libc, `bind(${path})`);
      // No connection can be accepted before listen(), so the mode is in place first.
      Deno.chmodSync(path, mode);
      if (libc.symbols.listen(fd, 64) < 0) fail(libc, `listen(${path})`);
    } catch (error) {
      libc.symbols.close(fd);
      throw error;
    }
    return new UnixListener(libc, fd, path);
  }

  /** Waits for the next connection; null once the listener is closed. */
  accept(): Promise<UnixConnection | null> {
    const work = (async () => {
      while (true) {
        if (this.#fd < 0) return null;
        const fd = this.#libc.symbols.accept4_now(
          this.#fd,
          null,
          null,
          SOCK_NONBLOCK | SOCK_CLOEXEC,
        );
        if (fd >= 0) return new UnixConnection(this.#libc, fd);
        const errno = this.#libc.errnoName();
        if (errno !== "EAGAIN" && errno !== "EINTR" && errno !== "ECONNABORTED") {
          throw new SocketError(`accept4 failed: ${errno}`, errno);
        }
        if (!await waitFor(this.#libc, this.#fd, POLLIN, this.#waker)) return null;
      }
    })();
    this.#accepting = work.catch(() => undefined);
    return work;
  }

  /** Stops listening and removes the socket file. */
  async close(): Promise<void> {
    if (this.#fd < 0) return;
    this.#waker.wake();
    await this.#accepting;
    this.#libc.symbols.close(this.#fd);
    this.#fd = -1;
    this.#waker.close();
    try {
      Deno.removeSync(this.path);
    } catch {
      // Already gone.
    }
  }
}

/** Connects to the unix stream socket at `path`. Throws SocketError (ENOENT, ECONNREFUSED). */
export function connectUnix(libc: Libc, path: string): UnixConnection {
  const fd = libc.symbols.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(libc, "socket(AF_UNIX)");
  const address = sockaddr(path);
  if (libc.symbols.connect(fd, address, address.length) < 0) {
    const errno = libc.errnoName();
    libc.symbols.close(fd);
    throw new SocketError(`connect(${path}) failed: ${errno}`, errno);
  }
  // Nonblocking from here on: waits go through poll.
  const flags = libc.symbols.fcntl(fd, 3, /* F_GETFL */ 0);
  libc.symbols.fcntl(fd, 4, /* F_SETFL */ flags | O_NONBLOCK);
  return new UnixConnection(libc, fd);
}

/** Closes fds received but not wanted. */
export function closeFds(libc: Libc, fds: readonly number[]): void {
  for (const fd of fds) libc.symbols.close(fd);
}

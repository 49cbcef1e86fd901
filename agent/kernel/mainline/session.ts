/**
 * A live-update session fd: a named container of preserved files. Outgoing
 * sessions (created in this boot) take files with {@link Session.preserveFd};
 * incoming ones (handed over by the previous kernel) give them back with
 * {@link Session.retrieveFd} and are released with {@link Session.finish}.
 *
 * Closing an outgoing session before the kexec unpreserves its files (the
 * abort path); closing an incoming one finishes it. The session's files are
 * serialized inside reboot(2), so whoever holds the session must keep it open
 * until then.
 *
 * @module
 */

import type { Libc } from "../../host/libc.ts";
import { failed } from "../../host/kernel_fs.ts";
import { libcKernelFs } from "../../host/libc_kernel_fs.ts";
import {
  decodeFd,
  decodeGetName,
  encodeFdArgument,
  encodeFinishArgument,
  encodeGetNameArgument,
  IOCTL,
} from "./abi.ts";
import { liveupdateError, type LiveupdateRequest } from "./errors.ts";

/** Which side of the kexec a session belongs to. */
export type SessionDirection =
  /** Created in this boot, to be handed over at the next kexec. */
  | "outgoing"
  /** Handed over by the previous kernel and retrieved in this boot. */
  | "incoming";

/** An open session fd. Close it (or `using`) when done. */
export class Session implements Disposable {
  #fd: number;
  readonly #libc: Libc;

  /** Wraps an open session `fd`; the session owns it from now on. */
  constructor(
    libc: Libc,
    fd: number,
    readonly name: string,
    readonly direction: SessionDirection,
  ) {
    this.#libc = libc;
    this.#fd = fd;
  }

  /** The session fd (for passing it to a client); -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether the fd is still open. */
  get open(): boolean {
    return this.#fd >= 0;
  }

  #ioctl(
    request: LiveupdateRequest,
    number: number,
    argument: Uint8Array<ArrayBuffer>,
    extra: { token?: bigint; fd?: number } = {},
  ): void {
    if (this.#fd < 0) {
      throw new TypeError(`Session ${JSON.stringify(this.name)} is closed`);
    }
    const result = this.#libc.symbols.ioctl(this.#fd, BigInt(number), argument);
    if (result < 0) {
      throw liveupdateError(this.#libc.errnoName(), {
        request,
        file: `session ${JSON.stringify(this.name)}`,
        session: this.name,
        ...extra,
      });
    }
  }

  /**
   * Preserves the open file `fd` (mainline: a memfd) under `token`, unique in this
   * session. The kernel takes its own reference: the caller may close `fd`
   * afterwards. Throws LiveupdateError (ENOENT: file type not preservable;
   * EBUSY: already preserved; EEXIST: token used).
   */
  preserveFd(fd: number, token: bigint): void {
    this.#ioctl("preserve-fd", IOCTL.preserveFd, encodeFdArgument(fd, token), { token, fd });
  }

  /**
   * Retrieves the file preserved under `token` as a new fd (O_CLOEXEC) the caller
   * owns. Repeated calls return new fds for the same file. Throws LiveupdateError
   * (ENOENT: no such token).
   */
  retrieveFd(token: bigint): number {
    const argument = encodeFdArgument(-1, token);
    this.#ioctl("retrieve-fd", IOCTL.retrieveFd, argument, { token });
    return decodeFd(argument);
  }

  /**
   * Releases what the kernel still holds for this incoming session; files not
   * retrieved are dropped. Finishing a finished session succeeds. Throws
   * LiveupdateError (EINVAL on an outgoing session).
   */
  finish(): void {
    this.#ioctl("finish", IOCTL.finish, encodeFinishArgument());
  }

  /**
   * The session's full name as the kernel knows it: GET_NAME (7.2+), else the
   * fd's /proc link ("anon_inode:[luo_session] NAME", read through libc).
   */
  kernelName(): string {
    const argument = encodeGetNameArgument();
    const result = this.#libc.symbols.ioctl(this.#fd, BigInt(IOCTL.getName), argument);
    if (result >= 0) return decodeGetName(argument);
    const errno = this.#libc.errnoName();
    if (errno !== "EINVAL" && errno !== "ENOTTY") {
      throw liveupdateError(errno, {
        request: "get-name",
        file: `session ${JSON.stringify(this.name)}`,
        session: this.name,
      });
    }
    return sessionNameFromProc(this.#libc, this.#fd);
  }

  /** Closes the fd: unpreserves an outgoing session, finishes an incoming one. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    this.#libc.symbols.close(fd);
  }

  /** Gives up ownership of the fd without closing it (after passing it on). */
  release(): number {
    const fd = this.#fd;
    this.#fd = -1;
    return fd;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

const PROC_PREFIX = "anon_inode:[luo_session] ";

/**
 * The session name in fd's /proc/self/fd link, for kernels without GET_NAME (read
 * through libc: Deno refuses /proc under the agent's permissions).
 */
export function sessionNameFromProc(libc: Libc, fd: number): string {
  const link = `/proc/self/fd/${fd}`;
  const target = libcKernelFs(libc).readLink(link);
  if (failed(target)) throw new TypeError(`Cannot read ${link} (${target.errno})`);
  if (!target.startsWith(PROC_PREFIX)) {
    throw new TypeError(`fd ${fd} is not a live-update session (${JSON.stringify(target)})`);
  }
  return target.slice(PROC_PREFIX.length);
}

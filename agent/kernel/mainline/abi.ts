/**
 * The binary interface of mainline Linux's `/dev/liveupdate` (6.19+): ioctl
 * numbers and the argument structs, encoded and decoded byte by byte.
 *
 * Written from the kernel's UAPI header `include/uapi/linux/liveupdate.h` (7.3);
 * `tests/mainline/abi_layout_test.ts` compiles that header from the built kernel
 * source and checks every size and offset here against it.
 *
 * Every struct starts with `u32 size`: the kernel copies `size` bytes and refuses
 * (E2BIG) any non-zero byte beyond what it understands, so the buffers below are
 * exactly the struct's size and zeroed before the fields are set. Integers are
 * native (little-endian on every architecture the agent ships for).
 *
 * @module
 */

/** The ioctl type byte ("magic") of the live-update device. */
export const IOCTL_TYPE = 0xba;

/** Longest session name in bytes, including the terminating NUL. */
export const SESSION_NAME_LENGTH = 64;

/** `_IO(0xBA, nr)`: the commands carry no size or direction bits. */
function io(nr: number): number {
  return (IOCTL_TYPE << 8) | nr;
}

/** The ioctl request numbers. */
export const IOCTL = {
  /** On /dev/liveupdate: create an outgoing session. */
  createSession: io(0x00),
  /** On /dev/liveupdate: retrieve an incoming session by name. */
  retrieveSession: io(0x01),
  /** On an outgoing session fd: preserve a file under a token. */
  preserveFd: io(0x40),
  /** On an incoming session fd: get a preserved file back by its token. */
  retrieveFd: io(0x41),
  /** On an incoming session fd: release everything the session still holds. */
  finish: io(0x42),
  /** On any session fd: the session's full name (Linux 7.2+). */
  getName: io(0x43),
} as const;

/** Sizes and field offsets of the argument structs. */
export const LAYOUT = {
  /** struct liveupdate_ioctl_create_session / _retrieve_session. */
  session: { size: 72, fd: 4, name: 8 },
  /** struct liveupdate_session_preserve_fd / _retrieve_fd (token is 8-aligned). */
  fd: { size: 16, fd: 4, token: 8 },
  /** struct liveupdate_session_finish. */
  finish: { size: 8, reserved: 4 },
  /** struct liveupdate_session_get_name. */
  getName: { size: 72, reserved: 4, name: 8 },
} as const;

/** An ioctl argument buffer of a struct's exact size, zeroed, with `size` set. */
function argument(size: number): { bytes: Uint8Array<ArrayBuffer>; view: DataView } {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, size, true);
  return { bytes, view };
}

/** Why a session name cannot be used, or undefined when it can. */
export function sessionNameProblem(name: string): string | undefined {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length === 0) return "it is empty";
  if (bytes.includes(0)) return "it contains a NUL byte";
  if (bytes.length > SESSION_NAME_LENGTH - 1) {
    return `it is ${bytes.length} bytes long (at most ${SESSION_NAME_LENGTH - 1})`;
  }
  return undefined;
}

/**
 * The argument of CREATE_SESSION / RETRIEVE_SESSION for `name`. The caller has
 * checked the name with {@link sessionNameProblem}; this only refuses what cannot
 * be encoded at all.
 */
export function encodeSessionArgument(name: string): Uint8Array<ArrayBuffer> {
  const encoded = new TextEncoder().encode(name);
  if (encoded.length > SESSION_NAME_LENGTH - 1 || encoded.includes(0)) {
    throw new RangeError(`Session name ${JSON.stringify(name)} cannot be encoded`);
  }
  const { bytes, view } = argument(LAYOUT.session.size);
  view.setInt32(LAYOUT.session.fd, -1, true);
  bytes.set(encoded, LAYOUT.session.name);
  return bytes;
}

/** The session fd the kernel wrote into a CREATE/RETRIEVE_SESSION argument. */
export function decodeSessionFd(bytes: Uint8Array<ArrayBuffer>): number {
  return new DataView(bytes.buffer).getInt32(LAYOUT.session.fd, true);
}

/** The argument of PRESERVE_FD (`fd` and `token` in) or RETRIEVE_FD (`token` in). */
export function encodeFdArgument(fd: number, token: bigint): Uint8Array<ArrayBuffer> {
  if (token < 0n || token > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(`Token ${token} is not an unsigned 64-bit number`);
  }
  const { bytes, view } = argument(LAYOUT.fd.size);
  view.setInt32(LAYOUT.fd.fd, fd, true);
  view.setBigUint64(LAYOUT.fd.token, token, true);
  return bytes;
}

/** The fd the kernel wrote into a RETRIEVE_FD argument. */
export function decodeFd(bytes: Uint8Array<ArrayBuffer>): number {
  return new DataView(bytes.buffer).getInt32(LAYOUT.fd.fd, true);
}

/** The argument of FINISH (reserved must be zero). */
export function encodeFinishArgument(): Uint8Array<ArrayBuffer> {
  return argument(LAYOUT.finish.size).bytes;
}

/** The argument of GET_NAME (reserved zero; the kernel fills the name). */
export function encodeGetNameArgument(): Uint8Array<ArrayBuffer> {
  return argument(LAYOUT.getName.size).bytes;
}

/** The name in a GET_NAME argument the kernel filled (up to the first NUL). */
export function decodeGetName(bytes: Uint8Array<ArrayBuffer>): string {
  const field = bytes.subarray(LAYOUT.getName.name, LAYOUT.getName.name + SESSION_NAME_LENGTH);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

/**
 * Linux errno numbers and names (x86-64 and arm64 share these values).
 *
 * @module
 */

const NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  8: "ENOEXEC",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  32: "EPIPE",
  34: "ERANGE",
  35: "EDEADLK",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  40: "ELOOP",
  61: "ENODATA",
  62: "ETIME",
  71: "EPROTO",
  75: "EOVERFLOW",
  88: "ENOTSOCK",
  90: "EMSGSIZE",
  95: "EOPNOTSUPP",
  98: "EADDRINUSE",
  104: "ECONNRESET",
  107: "ENOTCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  125: "ECANCELED",
};

const NUMBERS: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(NAMES).map(([number, name]) => [name, Number(number)]),
);

/** The name of errno `number` ("EINVAL"), or "errno N" for one not in the table. */
export function errnoName(number: number): string {
  return NAMES[number] ?? `errno ${number}`;
}

/** The number of errno `name`, or undefined for a name not in the table. */
export function errnoNumber(name: string): number | undefined {
  return NUMBERS[name];
}

/**
 * Turning what the host threw at a kernel file operation into a {@link KernelError}
 * an operator can act on: the errno name, the file, the operation, and a sentence
 * saying what the kernel meant by it here and what to do.
 *
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import { errnoName } from "../host/errno.ts";
import type { DevicePath, LuoState } from "./kernel.ts";
import { KernelError, type KernelOperation } from "./kernel_error.ts";

/**
 * The errno name of a failed host call. Deno's OS errors carry it as `code`
 * ("EINVAL"), but not for every errno (ENODEV has none; 95 is called "ENOTSUP"),
 * while their message always ends in "(os error N)": the number wins when it is
 * there, named as {@link errnoName} names it. Deno 2.9 surfaces a rejected sysfs
 * write as a `TypeError` and EACCES as `PermissionDenied`, so the class says
 * nothing. Undefined for errors that are not the kernel's (Deno's own
 * permission checks, the agent's own errors).
 */
export function errnoOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const message = (error as { message?: unknown }).message;
  const number = typeof message === "string" ? /\(os error (\d+)\)/.exec(message)?.[1] : undefined;
  const code = (error as { code?: unknown }).code;
  const named = typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
  if (number !== undefined) {
    const name = errnoName(Number(number));
    return name.startsWith("errno ") ? named ?? name : name;
  }
  return named;
}

const DESCRIPTIONS: Readonly<Record<string, string>> = {
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  EINTR: "interrupted system call",
  EIO: "input/output error",
  ENXIO: "no such device or address",
  EAGAIN: "resource temporarily unavailable",
  ENOMEM: "out of memory",
  EACCES: "permission denied",
  EFAULT: "bad address",
  EBUSY: "device or resource busy",
  EEXIST: "file exists",
  ENODEV: "no such device",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EINVAL: "invalid argument",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  ELOOP: "too many levels of symbolic links",
  EXDEV: "invalid cross-device link",
  ERANGE: "result out of range",
  ENOSYS: "function not implemented",
  ENODATA: "no data available",
  ETIMEDOUT: "timed out",
  EOPNOTSUPP: "operation not supported",
  ECANCELED: "operation cancelled",
  ENOTCONN: "transport endpoint is not connected",
};

/** "EBUSY (device or resource busy)". */
export function describeErrno(errno: string): string {
  const text = DESCRIPTIONS[errno];
  return text ? `${errno} (${text})` : errno;
}

/** What the agent was doing, for {@link kernelFailure}. */
export interface FailureContext {
  file: string;
  operation: KernelOperation;
  /** The device, for per-device operations. */
  device?: DevicePath;
  /** The global state read right after the failure, when it could be read. */
  state?: LuoState;
}

const JOURNAL = "The kernel log (journalctl -k) names the subsystem";

function stateClause(state: LuoState | undefined): string {
  return state === undefined ? "" : `the live-update state is "${state}"`;
}

function missing(context: FailureContext): string {
  if (context.device !== undefined) {
    return `Device "${context.device}" has no ${context.file}: the device was removed ` +
      "(hot-unplugged or its driver unbound), or the kernel offers no live update for it. " +
      "Run the device selection again.";
  }
  return `${context.file} does not exist: the running kernel offers no RFC v1 live-update ` +
    "interface there (it needs liveupdate=1 and KHO on its command line), or paths.sysfs is wrong.";
}

function invalid(context: FailureContext): string {
  const { file, state, device } = context;
  switch (context.operation) {
    case "prepare":
      if (state === "normal") {
        return `A subsystem's prepare callback refused with EINVAL (invalid argument); the ` +
          `kernel cancelled the prepare and the state stays "normal". ${JOURNAL}; fix it and retry.`;
      }
      if (state !== undefined) {
        return `The kernel refused to prepare (EINVAL from ${file}): ${stateClause(state)}, and ` +
          `prepare needs "normal". ` +
          (state === "prepared"
            ? "An update is already prepared: cancel it first, or continue it."
            : "The previous update is not finished yet: finish it first.");
      }
      return `The kernel refused to prepare (EINVAL from ${file}): either the state is not ` +
        `"normal" or a subsystem's prepare callback refused (the state could not be read ` +
        `afterwards). ${JOURNAL}.`;
    case "cancel":
      return `The kernel refused to cancel (EINVAL from ${file}): ` +
        (state === undefined ? "the state could not be read" : stateClause(state)) +
        `, and cancel needs "prepared"` +
        (state === "normal" ? "; there is nothing to cancel." : ".");
    case "finish":
      return `The kernel refused to finish (EINVAL from ${file}): ` +
        (state === undefined ? "the state could not be read" : stateClause(state)) +
        `, and finish needs "updated" (the new kernel right after a live update).`;
    case "request":
    case "unrequest": {
      const value = context.operation === "request" ? "1" : "0";
      if (state !== undefined && state !== "normal") {
        return `The kernel refused to set "requested" of device "${device}" to ${value} ` +
          `(EINVAL from ${file}): ${stateClause(state)}, and "requested" can change only in ` +
          `"normal". Cancel or finish the update first.`;
      }
      if (context.operation === "request") {
        return `The kernel refused to preserve device "${device}" (EINVAL from ${file}): the ` +
          "device or one of its ancestors has no live-update support in its driver or bus " +
          '(the kernel log says "no liveupdate callback"). Leave it out of the selection.';
      }
      return `The kernel refused to set "requested" of device "${device}" to 0 (EINVAL from ` +
        `${file})` + (state === undefined ? "; the state could not be read." : ".");
    }
    default:
      return `The kernel rejected the ${context.operation} on ${file} with EINVAL (invalid argument).`;
  }
}

function whatWasDone(context: FailureContext): string {
  switch (context.operation) {
    case "request":
      return `setting "requested" of device "${context.device}" to 1`;
    case "unrequest":
      return `setting "requested" of device "${context.device}" to 0`;
    case "read":
      return `reading ${context.file}`;
    default:
      return `the ${context.operation}`;
  }
}

function message(errno: string | undefined, context: FailureContext, cause: unknown): string {
  const { file, operation } = context;
  if (errno === undefined) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    return `The agent could not access ${file} for ${whatWasDone(context)}: ${detail}. ` +
      "Check that paths.sysfs points at sysfs and that the agent runs with its permissions.";
  }
  if (errno === "ENOENT") return missing(context);
  if (errno === "EINVAL") return invalid(context);
  if (errno === "EAGAIN") {
    return `The kernel gave up waiting for the live-update state lock during ` +
      `${whatWasDone(context)} (EAGAIN from ${file}: interrupted by a signal); nothing ` +
      "changed. Retry.";
  }
  if (errno === "EACCES" || errno === "EPERM") {
    const verb = operation === "read" ? "reading" : "writing";
    return `Permission denied ${verb} ${file} (${errno}): ` +
      (operation === "read" ? "" : "the file is read-only or ") +
      "the agent is not running as root.";
  }
  if (errno === "ENODEV" && (operation === "read" || operation === "poll")) {
    return `${file} was removed while the agent had it open (ENODEV): the live-update ` +
      "interface went away (the kernel behind it was replaced or the interface unloaded); " +
      "start again.";
  }
  if (errno === "ELOOP" || errno === "EXDEV") {
    const verb = operation === "read" || operation === "poll" ? "read" : "write";
    return `The agent refused to ${verb} ${file} (${errno}): a symlink or ".." on the way would ` +
      `lead elsewhere, and the agent ${verb}s the live-update files only through real ` +
      "directories below paths.sysfs (sysfs has no symlinks there). Check paths.sysfs and what " +
      "is planted in that directory.";
  }
  if (operation === "prepare") {
    return `A subsystem's prepare callback failed with ${describeErrno(errno)}; the kernel ` +
      `cancelled the prepare and the state stays "normal". ${JOURNAL}; resolve it (for ` +
      "example a device still in use) and retry.";
  }
  if (operation === "request" && errno === "EBUSY") {
    return `The kernel refused to preserve device "${context.device}" with EBUSY (device or ` +
      "resource busy) from " + `${file}. See the kernel log (journalctl -k).`;
  }
  const where = operation === "read" ? "" : ` on ${file}`;
  return `The kernel failed ${whatWasDone(context)} with ${describeErrno(errno)}${where}. ` +
    "See the kernel log (journalctl -k).";
}

function exitCode(errno: string | undefined, context: FailureContext): ExitCode {
  if (errno === "EAGAIN") return ExitCode.Busy;
  if (errno === "ENOENT" && context.device === undefined) return ExitCode.Unsupported;
  return ExitCode.Failed;
}

/**
 * The error a failed `KernelFs` call stands for, shaped like Deno's OS errors
 * (the errno name as `code`), so {@link kernelFailure} and {@link errnoOf} read it.
 */
export function fsFailureError(errno: string, call: string, file: string): Error {
  return Object.assign(new Error(`${errno}: ${call} ${file}`), { code: errno });
}

/** The KernelError for `cause`, thrown by a host call during `context.operation`. */
export function kernelFailure(cause: unknown, context: FailureContext): KernelError {
  const errno = errnoOf(cause);
  return new KernelError(message(errno, context, cause), {
    errno,
    file: context.file,
    operation: context.operation,
    cause,
    exitCode: exitCode(errno, context),
  });
}

/** "normal\n…" as a short quoted value for messages. */
export function quoteContents(contents: string): string {
  const shown = contents.length > 40 ? `${contents.slice(0, 40)}…` : contents;
  return JSON.stringify(shown);
}

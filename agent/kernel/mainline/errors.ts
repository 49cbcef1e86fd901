/**
 * What each errno of `/dev/liveupdate` and its session fds means here, as
 * {@link LiveupdateError}s whose messages say what happened and what to do.
 * Meanings come from the 7.3 sources (drivers of the ioctls in
 * kernel/liveupdate/luo_core.c, luo_session.c, luo_file.c and mm/memfd_luo.c) and
 * were checked on a real kernel by tests/mainline/.
 *
 * @module
 */

import { ExitCode } from "../../exit_codes.ts";
import { KernelError } from "../kernel_error.ts";

/** The operations on the mainline interface. */
export type LiveupdateRequest =
  | "open"
  | "create-session"
  | "retrieve-session"
  | "preserve-fd"
  | "retrieve-fd"
  | "finish"
  | "get-name";

/** Options of {@link LiveupdateError}. */
export interface LiveupdateErrorOptions {
  errno: string;
  /** The device node or the session ("session \"vm-1\""). */
  file: string;
  request: LiveupdateRequest;
  /** The session the request was about, if any. */
  session?: string;
  /** The token of a preserve/retrieve, if any. */
  token?: bigint;
  cause?: unknown;
  exitCode?: ExitCode;
}

/** The mainline live-update interface refused a request; `errno` names the reason. */
export class LiveupdateError extends KernelError {
  override name = "LiveupdateError";
  readonly request: LiveupdateRequest;
  readonly session: string | undefined;
  readonly token: bigint | undefined;

  constructor(message: string, options: LiveupdateErrorOptions) {
    super(message, {
      errno: options.errno,
      file: options.file,
      operation: options.request === "open" ? "open" : "ioctl",
      cause: options.cause,
      exitCode: options.exitCode,
    });
    this.request = options.request;
    this.session = options.session;
    this.token = options.token;
  }
}

/** What the caller was doing, for the message. */
export interface ErrorContext {
  request: LiveupdateRequest;
  /** The device path (open, create, retrieve) or "session NAME". */
  file: string;
  session?: string;
  token?: bigint;
  /** The fd being preserved, if any. */
  fd?: number;
}

const ANY: Readonly<Record<string, string>> = {
  ENOTTY: "the file is not a live-update device or session (the ioctl number is unknown to it)",
  E2BIG: "the kernel does not understand the argument struct (it is older than this agent " +
    "expects); update the agent or the kernel",
  EFAULT: "the kernel could not read or write the argument struct (an agent bug; please report it)",
  ENOMEM: "the kernel is out of memory; free memory and retry",
  EINTR: "the request was interrupted by a signal; retry",
};

function quoted(text: string | undefined): string {
  return JSON.stringify(text ?? "");
}

function meaning(errno: string, c: ErrorContext): [string, ExitCode?] {
  const session = `session ${quoted(c.session)}`;
  const token = c.token === undefined ? "" : ` token ${c.token}`;
  switch (c.request) {
    case "open":
      switch (errno) {
        case "EBUSY":
          return [
            `${c.file} is held by another process (it admits one opener at a time; systemd opens ` +
            "it at boot and just before a kexec). Retry later, and check that no other live-update " +
            "agent runs",
            ExitCode.Busy,
          ];
        case "EIO":
          return [
            `the kernel could not take over the sessions the previous kernel handed over (${c.file} ` +
            "refuses every open in this boot). The preserved state is lost; see the kernel log " +
            "(luo_session) and reboot cold to release the memory",
          ];
        case "ENOENT":
        case "ENODEV":
        case "ENXIO":
          return [
            `${c.file} does not exist: the kernel lacks CONFIG_LIVEUPDATE or was booted without ` +
            '"kho=on liveupdate=on"',
            ExitCode.Unsupported,
          ];
        case "EACCES":
        case "EPERM":
          return [`opening ${c.file} needs root (or CAP_SYS_ADMIN)`];
      }
      break;
    case "create-session":
      switch (errno) {
        case "EEXIST":
          return [
            `the session name ${
              quoted(c.session)
            } is taken: a session of that name already exists ` +
            "in this boot (another client, or one not closed yet). Pick another name or close the old " +
            "session",
          ];
        case "EINVAL":
          return [`the session name ${quoted(c.session)} is empty or longer than 63 bytes`];
        case "ENOSPC":
          return ["the kernel has no room for another session"];
        case "EMFILE":
        case "ENFILE":
          return ["the agent is out of file descriptors; raise LimitNOFILE="];
      }
      break;
    case "retrieve-session":
      switch (errno) {
        case "ENOENT":
          return [
            `the previous kernel handed over no ${session}: it was closed before the kexec, the ` +
            "target was loaded with kexec_load instead of kexec_file_load (kexec -s), or this is " +
            "not a live-update boot. Its preserved files are lost",
          ];
        case "EINVAL":
          return [
            `the ${session} was already retrieved in this boot (by this agent or another opener ` +
            "of the device); only one retrieval per boot is possible",
          ];
        case "EMFILE":
        case "ENFILE":
          return ["the agent is out of file descriptors; raise LimitNOFILE="];
      }
      break;
    case "preserve-fd":
      switch (errno) {
        case "ENOENT":
          return [
            `this file type cannot be preserved (fd ${c.fd}): this kernel's live update preserves ` +
            "only memfds (memfd_create)",
          ];
        case "EBUSY":
          return [`the file (fd ${c.fd}) is already preserved, in this or another session`];
        case "EEXIST":
          return [`${token.trim()} is already used in ${session}; use one token per file`];
        case "EBADF":
          return [`fd ${c.fd} is not an open file descriptor`];
        case "EINVAL":
          return [
            `${session} is an incoming session (retrieved after the kexec); files can only be ` +
            "preserved in a session created in this boot",
          ];
        case "EOPNOTSUPP":
          return [
            `the memfd (fd ${c.fd}) carries seals this kernel cannot preserve; drop the unsupported ` +
            "seals",
          ];
        case "EFBIG":
          return [`the memfd (fd ${c.fd}) is too large to preserve`];
        case "ENOSPC":
          return [`${session} has no room for another file`];
      }
      break;
    case "retrieve-fd":
      switch (errno) {
        case "ENOENT":
          return [`${session} holds no file under${token}`];
        case "EINVAL":
          return [
            `${session} was created in this boot; files can only be retrieved from a session ` +
            "handed over by the previous kernel",
          ];
        case "EMFILE":
        case "ENFILE":
          return ["out of file descriptors; raise LimitNOFILE="];
      }
      return [
        `the kernel could not restore the file under${token} of ${session}; it stays lost ` +
        "(a retry returns the same error)",
      ];
    case "finish":
      switch (errno) {
        case "EINVAL":
          return [
            `${session} was created in this boot; only sessions handed over by the previous ` +
            "kernel can be finished (closing an outgoing session unpreserves it instead)",
          ];
        case "EBUSY":
        case "EAGAIN":
          return [
            `a file handler of ${session} is not ready to finish yet; its files stay preserved ` +
            "and finish can be retried",
          ];
      }
      return [`the files of ${session} stay preserved; finish can be retried`];
    case "get-name":
      switch (errno) {
        case "EINVAL":
        case "ENOTTY":
          return ["this kernel has no GET_NAME ioctl (it came with Linux 7.2)"];
      }
      break;
  }
  const generic = ANY[errno];
  return [generic ?? "the kernel gave no further reason"];
}

/** A {@link LiveupdateError} for `errno` from `context.request`. */
export function liveupdateError(
  errno: string,
  context: ErrorContext,
  cause?: unknown,
): LiveupdateError {
  const [what, exitCode] = meaning(errno, context);
  const action = ACTIONS[context.request];
  const subject = context.session === undefined ? "" : ` (session ${quoted(context.session)})`;
  return new LiveupdateError(
    `${action}${subject} failed with ${errno}: ${what}.`,
    {
      errno,
      file: context.file,
      request: context.request,
      session: context.session,
      token: context.token,
      cause,
      exitCode,
    },
  );
}

const ACTIONS: Readonly<Record<LiveupdateRequest, string>> = {
  "open": "Opening the live-update device",
  "create-session": "Creating a live-update session",
  "retrieve-session": "Retrieving a live-update session",
  "preserve-fd": "Preserving a file",
  "retrieve-fd": "Retrieving a preserved file",
  "finish": "Finishing a live-update session",
  "get-name": "Reading a session's name",
};

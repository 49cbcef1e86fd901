/**
 * The exit codes of `liveupdate-agent`, defined in one place.
 *
 * The README's "Exit codes" table is checked against {@link EXIT_CODE_DOCS} by a
 * test, so the documentation cannot drift from the code.
 *
 * @module
 */

/** Process exit codes. Scripts and systemd units may rely on these values. */
export const ExitCode = {
  /** The command did what was asked. */
  Success: 0,
  /** The command failed; the host may need attention (see the log and `status`). */
  Failed: 1,
  /** The command line was wrong: unknown command or option, bad option value. */
  Usage: 2,
  /** The configuration could not be read or is invalid. */
  Config: 3,
  /** The running kernel does not offer live update (or not the interface needed). */
  Unsupported: 4,
  /** Preflight refused the update before anything on the host was changed. */
  Refused: 5,
  /** The update failed and everything it had changed was rolled back. */
  RolledBack: 6,
  /** Another live-update operation holds the lock; nothing was done. */
  Busy: 7,
  /** A wait (for example `wait --for=normal`, or for a fleet slot) timed out. */
  Timeout: 8,
  /** A command that changes the host was run by neither root nor a member of `control.group`. */
  NotPermitted: 9,
} as const;

/** One of the values of {@link ExitCode}. */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** Human descriptions of each exit code, in the order the README lists them. */
export const EXIT_CODE_DOCS: readonly { code: ExitCode; name: string; meaning: string }[] = [
  { code: ExitCode.Success, name: "success", meaning: "The command did what was asked." },
  {
    code: ExitCode.Failed,
    name: "failed",
    meaning: "The command failed; see the log and `liveupdate-agent status`.",
  },
  {
    code: ExitCode.Usage,
    name: "usage error",
    meaning: "Unknown command or option, or a bad option value.",
  },
  {
    code: ExitCode.Config,
    name: "config error",
    meaning: "A configuration file could not be read or is invalid.",
  },
  {
    code: ExitCode.Unsupported,
    name: "not supported",
    meaning: "The running kernel does not offer live update (or not the interface needed).",
  },
  {
    code: ExitCode.Refused,
    name: "refused by preflight",
    meaning: "Preflight refused the update; nothing on the host was changed.",
  },
  {
    code: ExitCode.RolledBack,
    name: "rolled back",
    meaning: "The update failed and everything it had changed was undone.",
  },
  {
    code: ExitCode.Busy,
    name: "busy",
    meaning: "Another live-update operation holds the lock; nothing was done.",
  },
  {
    code: ExitCode.Timeout,
    name: "timeout",
    meaning: "A wait (for a kernel state, a maintenance window or a fleet slot) ran out.",
  },
  {
    code: ExitCode.NotPermitted,
    name: "not permitted",
    meaning:
      "A command that changes the host was run by neither root nor a `control.group` member.",
  },
];

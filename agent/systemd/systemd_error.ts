/**
 * Errors of the systemd layer. Every one names the unit (when there is one) and the
 * D-Bus error name (when the bus or the manager answered with one), and says what
 * to do.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { Phase } from "../config/schema.ts";

/** Options of {@link SystemdError}. */
export interface SystemdErrorOptions {
  unit?: string;
  /** The D-Bus error name ("org.freedesktop.systemd1.NoSuchUnit"). */
  dbusName?: string;
  cause?: unknown;
  exitCode?: ExitCode;
}

/** Anything that went wrong talking to systemd. */
export class SystemdError extends AgentError {
  override name = "SystemdError";
  /** The unit concerned, if any. */
  readonly unit: string | undefined;
  /** The D-Bus error name, if the bus or the manager answered with an error. */
  readonly dbusName: string | undefined;

  constructor(message: string, options: SystemdErrorOptions = {}) {
    super(message, { cause: options.cause, exitCode: options.exitCode ?? ExitCode.Failed });
    this.unit = options.unit;
    this.dbusName = options.dbusName;
  }
}

/** The bus could not be reached at all. */
export class BusConnectError extends SystemdError {
  override name = "BusConnectError";
  /** The address tried. */
  readonly address: string;

  constructor(address: string, reason: string, options: SystemdErrorOptions = {}) {
    super(
      `Cannot connect to the D-Bus bus at "${address}": ${reason}. Check that dbus.service is ` +
        "running and that systemd.bus_address names its socket.",
      options,
    );
    this.address = address;
  }
}

/** The connection to the bus was lost (or closed) while the agent needed it. */
export class BusDisconnectedError extends SystemdError {
  override name = "BusDisconnectedError";
  /** Why the connection is gone ("the bus closed the connection"). */
  readonly reason: string;

  constructor(reason: string, options: SystemdErrorOptions = {}) {
    const unit = options.unit ? ` while waiting for unit "${options.unit}"` : "";
    super(
      `The D-Bus connection to systemd was lost${unit}: ${reason}. Check dbus.service ` +
        "(journalctl -u dbus) and the state of the units with systemctl.",
      options,
    );
    this.reason = reason;
  }
}

/** A D-Bus method call was answered with an error, or not answered in time. */
export class BusCallError extends SystemdError {
  override name = "BusCallError";
  /** The method called ("StartUnit"). */
  readonly method: string;
  /** The error text the peer sent. */
  readonly text: string;

  constructor(
    method: string,
    dbusName: string,
    text: string,
    options: Omit<SystemdErrorOptions, "dbusName"> = {},
  ) {
    const unit = options.unit ? ` for unit "${options.unit}"` : "";
    super(
      `systemd refused ${method}${unit}: ${dbusName}: ${text || "(no message)"}.`,
      { ...options, dbusName },
    );
    this.method = method;
    this.text = text;
  }

  /** The same error, naming `unit`. */
  forUnit(unit: string): BusCallError {
    return new BusCallError(this.method, this.dbusName!, this.text, { unit, cause: this.cause });
  }
}

/** One reason a plan was refused before anything was changed. */
export interface PreflightProblem {
  unit: string;
  /** Where the unit comes from ("phases.prepare.stop", "phase target"). */
  source: string;
  /** What is wrong ("does not exist (LoadState not-found)"). */
  reason: string;
}

/**
 * A plan names units that cannot be acted on (missing, masked, broken): refused
 * before anything changed. Exit code 5 (refused by preflight).
 */
export class UnitPreflightError extends SystemdError {
  override name = "UnitPreflightError";
  readonly problems: readonly PreflightProblem[];

  constructor(problems: readonly PreflightProblem[]) {
    const first = problems[0]!;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : "";
    super(
      `Unit "${first.unit}" in ${first.source} ${first.reason}${more}. Nothing was changed. ` +
        "Install the unit, fix it, or remove it from the configuration.",
      { unit: first.unit, exitCode: ExitCode.Refused },
    );
    this.problems = problems;
  }
}

/** The result systemd reported for a job (JobRemoved), or how the agent lost it. */
export type JobResult =
  | "done"
  | "canceled"
  | "timeout"
  | "failed"
  | "dependency"
  | "skipped"
  | "invalid"
  | "assert"
  | "unsupported"
  | "collected"
  | "once"
  /** The job could not even be submitted (the call failed). */
  | "refused";

/** A job that did not end as asked. */
export interface JobFailure {
  unit: string;
  /** "start", "stop", "restart". */
  type: string;
  result: JobResult;
  /** For a service: why it failed (its Result: "exit-code", "timeout", "signal", …). */
  unitResult?: string;
  /** The D-Bus error name when submitting the job failed. */
  dbusName?: string;
  /** The error text when submitting the job failed. */
  text?: string;
}

/** What a phase (or an undo) changed: undo it by starting `stopped` and stopping `started`. */
export interface PhaseChanges {
  /** Units that were active and were stopped. */
  readonly stopped: readonly string[];
  /** Units that were not active and were started. */
  readonly started: readonly string[];
}

/** Options of {@link PhaseError}. */
export interface PhaseErrorOptions {
  phase: Phase | "undo";
  changes: PhaseChanges;
  failures?: readonly JobFailure[];
  /** Units whose jobs had not ended when the phase stopped waiting. */
  pending?: readonly string[];
  /** Units whose state the agent could not learn (the bus went away). */
  uncertain?: readonly string[];
  cause?: unknown;
  dbusName?: string;
}

function describeFailure(failure: JobFailure): string {
  const how = failure.result === "refused"
    ? `refused (${failure.dbusName}: ${failure.text})`
    : `ended with result "${failure.result}"` +
      (failure.unitResult ? ` (the service's result: "${failure.unitResult}")` : "");
  return `${failure.type} of "${failure.unit}" ${how}`;
}

/**
 * A phase did not complete. Carries what it changed anyway, so the caller can undo
 * it, and which units failed, were still pending, or are in an unknown state.
 */
export class PhaseError extends SystemdError {
  override name = "PhaseError";
  readonly phase: Phase | "undo";
  readonly changes: PhaseChanges;
  readonly failures: readonly JobFailure[];
  readonly pending: readonly string[];
  readonly uncertain: readonly string[];

  constructor(message: string, options: PhaseErrorOptions) {
    const unit = options.failures?.[0]?.unit ?? options.pending?.[0] ?? options.uncertain?.[0];
    super(message, {
      unit,
      dbusName: options.dbusName ?? options.failures?.find((f) => f.dbusName)?.dbusName,
      cause: options.cause,
    });
    this.phase = options.phase;
    this.changes = options.changes;
    this.failures = options.failures ?? [];
    this.pending = options.pending ?? [];
    this.uncertain = options.uncertain ?? [];
  }
}

function phaseName(phase: Phase | "undo"): string {
  return phase === "undo" ? "The undo of a phase" : `Phase "${phase}"`;
}

/** Some of a phase's jobs failed (failed, dependency, timeout, canceled, refused …). */
export class PhaseFailedError extends PhaseError {
  override name = "PhaseFailedError";

  constructor(options: PhaseErrorOptions & { failures: readonly JobFailure[] }) {
    const list = options.failures.slice(0, 5).map(describeFailure).join("; ");
    const more = options.failures.length > 5 ? `; and ${options.failures.length - 5} more` : "";
    super(
      `${phaseName(options.phase)} failed: ${list}${more}. See 'systemctl status UNIT' and ` +
        "'journalctl -u UNIT' for why.",
      options,
    );
  }
}

/** A phase's jobs did not all end within its timeout; the rest were cancelled. */
export class PhaseTimeoutError extends PhaseError {
  override name = "PhaseTimeoutError";
  /** The timeout, in milliseconds. */
  readonly timeoutMs: number;

  constructor(options: PhaseErrorOptions & { pending: readonly string[]; timeoutMs: number }) {
    const list = options.pending.slice(0, 5).map((u) => `"${u}"`).join(", ");
    const more = options.pending.length > 5 ? ` and ${options.pending.length - 5} more` : "";
    const key = options.phase === "undo" ? "the timeout" : `phases.${options.phase}.timeout`;
    super(
      `${
        phaseName(options.phase)
      } timed out after ${options.timeoutMs} ms waiting for ${list}${more}; ` +
        `their jobs were cancelled. Find out why they hang, or raise ${key}.`,
      options,
    );
    this.timeoutMs = options.timeoutMs;
  }
}

/** The phase was stopped (the agent got SIGTERM); jobs not ended yet were cancelled. */
export class PhaseAbortedError extends PhaseError {
  override name = "PhaseAbortedError";

  constructor(options: PhaseErrorOptions & { pending: readonly string[] }) {
    const list = options.pending.slice(0, 5).map((u) => `"${u}"`).join(", ");
    const more = options.pending.length > 5 ? ` and ${options.pending.length - 5} more` : "";
    super(
      `${phaseName(options.phase)} was stopped (the agent was asked to stop)` +
        (list ? ` while waiting for ${list}${more}; their jobs were cancelled.` : "."),
      options,
    );
  }
}

/** The bus went away during a phase; what happened to the pending jobs is unknown. */
export class PhaseDisconnectedError extends PhaseError {
  override name = "PhaseDisconnectedError";

  constructor(options: PhaseErrorOptions & { uncertain: readonly string[] }) {
    const list = options.uncertain.slice(0, 5).map((u) => `"${u}"`).join(", ");
    const more = options.uncertain.length > 5 ? ` and ${options.uncertain.length - 5} more` : "";
    super(
      `${phaseName(options.phase)} lost its D-Bus connection to systemd; the outcome for ` +
        `${list || "no unit"}${more} is unknown. Check dbus.service and the units' state ` +
        "with systemctl before retrying.",
      options,
    );
  }
}

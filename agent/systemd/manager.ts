/**
 * A client of systemd's `org.freedesktop.systemd1.Manager`: unit states, jobs followed
 * to their result, and the kexec. Built on the small {@link Bus} interface.
 *
 * Jobs are submitted with `EnqueueUnitJob`, which also returns every job the
 * transaction added (units pulled in by `Wants=`/`Requires=`, units stopped by
 * `Conflicts=` or by a stopped dependency), so the agent follows — and can later undo —
 * everything its request changed, not only the units it named. All jobs of a batch are
 * written to the bus at once (pipelined) after the `JobRemoved` subscription is in
 * place, so no result can be missed, not even one that arrives before the reply that
 * names its job.
 *
 * @module
 */

import type { Bus, BusCall, BusConnector } from "./bus.ts";
import {
  BusCallError,
  BusDisconnectedError,
  type JobResult,
  SystemdError,
} from "./systemd_error.ts";

const DESTINATION = "org.freedesktop.systemd1";
const MANAGER_PATH = "/org/freedesktop/systemd1";
const MANAGER = "org.freedesktop.systemd1.Manager";
const JOB = "org.freedesktop.systemd1.Job";
const JOB_REMOVED_MATCH =
  "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1'," +
  "interface='org.freedesktop.systemd1.Manager',member='JobRemoved'";

/** How long to wait for cancelled jobs to report back after a timeout. */
const CANCEL_GRACE_MS = 5_000;

/** What systemd says about a unit. */
export interface UnitStatus {
  name: string;
  /** "loaded", "not-found", "masked", "error", "bad-setting", "merged", "stub". */
  loadState: string;
  /** "active", "inactive", "failed", "activating", "deactivating", "reloading", … */
  activeState: string;
  subState: string;
  /** The type of a job queued for the unit ("start", "stop"), or "". */
  jobType: string;
  /** The unit's D-Bus object path. */
  path: string;
}

/** Whether a unit in `activeState` counts as running (or on its way up). */
export function isActive(activeState: string): boolean {
  return activeState === "active" || activeState === "activating" ||
    activeState === "reloading" || activeState === "refreshing";
}

/** How a job treats jobs already queued (systemctl's --job-mode). */
export type JobMode =
  | "replace"
  | "fail"
  | "isolate"
  | "ignore-dependencies"
  | "ignore-requirements"
  | "replace-irreversibly"
  | "flush";

/** A job the agent asks for. */
export interface JobRequest {
  unit: string;
  type: "start" | "stop" | "restart";
  /** Default "replace". */
  mode?: JobMode;
}

/** One job systemd ran for a batch: asked for, or added by the transaction. */
export interface JobRecord {
  unit: string;
  /** "start", "stop", "restart", "verify-active", … */
  type: string;
  /** Whether the agent asked for this job (false: the transaction added it). */
  anchor: boolean;
  /** The job's object path; absent when submitting failed. */
  path?: string;
  /** The result from JobRemoved; absent while the job had not ended. */
  result?: JobResult;
  /** When submitting failed: the D-Bus error name and text. */
  dbusName?: string;
  text?: string;
  /** The job had not ended when the time was up (the agent cancelled it). */
  timedOut?: boolean;
}

/** How a batch of jobs ended. */
export interface JobsRun {
  /** Every job: the requested ones in request order, then the ones systemd added. */
  records: JobRecord[];
  /** "complete": every job ended; otherwise why the agent stopped waiting. */
  ended: "complete" | "timeout" | "disconnected" | "aborted";
  /** The disconnect, when `ended` is "disconnected". */
  disconnect?: BusDisconnectedError;
}

/** Options of {@link SystemdManager.connect}. */
export interface ConnectOptions {
  /** How long connecting and each single call may take (default 25 s). */
  callTimeoutMs?: number;
}

/** Options of {@link SystemdManager.runJobs}. */
export interface RunJobsOptions {
  /** How long the whole batch may take, from submission to the last result. */
  timeoutMs: number;
  /** Cancel jobs still queued when the time is up (default true). */
  cancelOnTimeout?: boolean;
  /**
   * Stops waiting when aborted (the agent got SIGTERM): jobs not ended yet are
   * cancelled like at a timeout, and the batch ends "aborted".
   */
  signal?: AbortSignal;
}

function str(value: unknown, what: string): string {
  if (typeof value !== "string") throw new SystemdError(`systemd sent a malformed ${what}.`);
  return value;
}

/** Collects JobRemoved results by job path, including ones nobody waits for yet. */
class JobWatcher {
  #results = new Map<string, JobResult>();
  #waiters = new Map<string, Array<() => void>>();
  #off: () => void;

  constructor(bus: Bus) {
    this.#off = bus.onSignal((signal) => {
      if (signal.interface !== MANAGER || signal.member !== "JobRemoved") return;
      const [, path, , result] = signal.body;
      if (typeof path !== "string" || typeof result !== "string") return;
      this.#results.set(path, result as JobResult);
      for (const wake of this.#waiters.get(path) ?? []) wake();
      this.#waiters.delete(path);
    });
  }

  result(path: string): JobResult | undefined {
    return this.#results.get(path);
  }

  /** Resolves when the job at `path` has ended. */
  ended(path: string): Promise<void> {
    if (this.#results.has(path)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.#waiters.get(path) ?? [];
      list.push(resolve);
      this.#waiters.set(path, list);
    });
  }

  stop(): void {
    this.#off();
    this.#waiters.clear();
  }
}

function timer(ms: number): { promise: Promise<"timeout">; clear(): void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<"timeout">((resolve) => {
    id = setTimeout(() => resolve("timeout"), ms);
  });
  return { promise, clear: () => clearTimeout(id) };
}

function abortion(signal: AbortSignal | undefined): {
  promise: Promise<"aborted">;
  clear(): void;
} {
  if (!signal) return { promise: new Promise<never>(() => {}), clear: () => {} };
  let onAbort: () => void = () => {};
  const promise = new Promise<"aborted">((resolve) => {
    onAbort = () => resolve("aborted");
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  return { promise, clear: () => signal.removeEventListener("abort", onAbort) };
}

/** A connection to systemd's manager. Close it with {@link close} (or `await using`). */
export class SystemdManager implements AsyncDisposable {
  readonly #bus: Bus;
  readonly #callTimeoutMs: number;

  private constructor(bus: Bus, callTimeoutMs: number) {
    this.#bus = bus;
    this.#callTimeoutMs = callTimeoutMs;
  }

  /**
   * Connects to the bus at `address` and subscribes to job results (AddMatch for
   * JobRemoved, then Manager.Subscribe) before anything else is sent.
   */
  static async connect(
    connector: BusConnector,
    address: string,
    options: ConnectOptions = {},
  ): Promise<SystemdManager> {
    const callTimeoutMs = options.callTimeoutMs ?? 25_000;
    const bus = await connector.connect(address, { timeoutMs: callTimeoutMs });
    const manager = new SystemdManager(bus, callTimeoutMs);
    try {
      await bus.call({
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "AddMatch",
        signature: "s",
        body: [JOB_REMOVED_MATCH],
      }, { timeoutMs: callTimeoutMs });
      await manager.#call("Subscribe");
    } catch (error) {
      await bus.close();
      throw error;
    }
    return manager;
  }

  /** Whether the bus connection is up. */
  get connected(): boolean {
    return this.#bus.connected;
  }

  /** Resolves when the bus connection is gone. */
  get disconnected(): Promise<BusDisconnectedError> {
    return this.#bus.disconnected;
  }

  #call(
    member: string,
    signature = "",
    body: readonly unknown[] = [],
    timeoutMs = this.#callTimeoutMs,
    unit?: string,
  ): Promise<readonly unknown[]> {
    const call: BusCall = {
      destination: DESTINATION,
      path: MANAGER_PATH,
      interface: MANAGER,
      member,
    };
    if (signature) {
      call.signature = signature;
      call.body = body;
    }
    return this.#bus.call(call, { timeoutMs }).catch((error) => {
      if (unit && error instanceof BusCallError) throw error.forUnit(unit);
      if (unit && error instanceof BusDisconnectedError) {
        throw new BusDisconnectedError(error.reason, { unit, cause: error });
      }
      throw error;
    });
  }

  /** The manager's version ("252.38-1~deb12u1"). */
  async version(): Promise<string> {
    const [variant] = await this.#bus.call({
      destination: DESTINATION,
      path: MANAGER_PATH,
      interface: "org.freedesktop.DBus.Properties",
      member: "Get",
      signature: "ss",
      body: [MANAGER, "Version"],
    }, { timeoutMs: this.#callTimeoutMs });
    return str((variant as { value?: unknown })?.value, "Version property");
  }

  /**
   * The load and active state of each unit, in one call (ListUnitsByNames loads units
   * that are not loaded yet; a unit without a file has LoadState "not-found").
   */
  async unitStatuses(names: readonly string[]): Promise<UnitStatus[]> {
    if (names.length === 0) return [];
    const [list] = await this.#call("ListUnitsByNames", "as", [[...names]]);
    if (!Array.isArray(list)) throw new SystemdError("systemd sent a malformed unit list.");
    return list.map((row: unknown[]) => ({
      name: str(row[0], "unit name"),
      loadState: str(row[2], "LoadState"),
      activeState: str(row[3], "ActiveState"),
      subState: str(row[4], "SubState"),
      jobType: str(row[8], "job type"),
      path: str(row[6], "unit path"),
    }));
  }

  /**
   * Why a service last failed or stopped (its `Result` property: "success",
   * "exit-code", "signal", "timeout", "watchdog", "start-limit-hit", …), or undefined
   * for units that are not services.
   */
  async serviceResult(status: UnitStatus): Promise<string | undefined> {
    if (!status.name.endsWith(".service")) return undefined;
    const [variant] = await this.#bus.call({
      destination: DESTINATION,
      path: status.path,
      interface: "org.freedesktop.DBus.Properties",
      member: "Get",
      signature: "ss",
      body: ["org.freedesktop.systemd1.Service", "Result"],
    }, { timeoutMs: this.#callTimeoutMs });
    return str((variant as { value?: unknown })?.value, "Result property");
  }

  /**
   * Submits every request at once and follows every job — the requested ones and the
   * ones systemd added to their transactions — to its result. Never hangs: it ends
   * when all jobs ended, when `timeoutMs` is up (then queued jobs are cancelled and
   * their cancellation awaited briefly), or when the bus goes away. A request that
   * systemd refuses is recorded with result "refused" and its D-Bus error.
   */
  async runJobs(requests: readonly JobRequest[], options: RunJobsOptions): Promise<JobsRun> {
    if (!this.#bus.connected) {
      const error = await this.#bus.disconnected;
      return {
        records: requests.map((r) => ({ unit: r.unit, type: r.type, anchor: true })),
        ended: "disconnected",
        disconnect: error,
      };
    }
    const deadline = timer(options.timeoutMs);
    const aborted = abortion(options.signal);
    const watcher = new JobWatcher(this.#bus);
    const byPath = new Map<string, JobRecord>();
    const anchors: JobRecord[] = [];
    const added: JobRecord[] = [];
    try {
      // Write every call before awaiting any reply: one round trip for the batch.
      const submissions = requests.map((request) =>
        this.#call(
          "EnqueueUnitJob",
          "sss",
          [request.unit, request.type, request.mode ?? "replace"],
          // Never shorter than a plain call: a job systemd queued must be known (to be
          // followed or cancelled), even when the batch's time is nearly up.
          Math.max(options.timeoutMs, this.#callTimeoutMs),
          request.unit,
        ).then(
          (reply) => ({ request, reply }),
          (error: unknown) => ({ request, error }),
        )
      );
      const waits: Promise<void>[] = [];
      const record = (rec: JobRecord) => {
        const known = rec.path ? byPath.get(rec.path) : undefined;
        if (known) {
          known.anchor ||= rec.anchor;
          return;
        }
        if (rec.path) {
          byPath.set(rec.path, rec);
          waits.push(watcher.ended(rec.path));
        }
        (rec.anchor ? anchors : added).push(rec);
      };
      const repliesIn = Promise.all(submissions).then((outcomes) => {
        for (const outcome of outcomes) {
          const { request } = outcome;
          if ("error" in outcome) {
            const error = outcome.error;
            if (error instanceof BusCallError) {
              record({
                unit: request.unit,
                type: request.type,
                anchor: true,
                result: "refused",
                dbusName: error.dbusName,
                text: error.text,
              });
            } else record({ unit: request.unit, type: request.type, anchor: true });
            continue;
          }
          const [, path, unit, , type, affected] = outcome.reply;
          record({
            unit: str(unit, "unit name"),
            type: str(type, "job type"),
            anchor: true,
            path: str(path, "job path"),
          });
          for (const job of (affected ?? []) as unknown[][]) {
            record({
              unit: str(job[2], "unit name"),
              type: str(job[4], "job type"),
              anchor: false,
              path: str(job[1], "job path"),
            });
          }
        }
      });
      const ended = await Promise.race([
        repliesIn.then(() => Promise.all(waits)).then(() => "complete" as const),
        deadline.promise,
        aborted.promise,
        this.#bus.disconnected.then(() => "disconnected" as const),
      ]);
      // Every call ends by itself (reply, error, its own timeout or the disconnect):
      // wait for them, so a job whose reply came late is still known (and cancelled).
      await repliesIn;
      if (ended === "timeout" || ended === "aborted") {
        for (const [path, rec] of byPath) {
          if (rec.result === undefined && watcher.result(path) === undefined) rec.timedOut = true;
        }
        if (this.#bus.connected && options.cancelOnTimeout !== false) {
          await this.#cancelPending(byPath, watcher);
        }
      }
      const records = [...anchors, ...added];
      for (const rec of records) {
        if (rec.path && rec.result === undefined) rec.result = watcher.result(rec.path);
      }
      const run: JobsRun = { records, ended };
      if (ended === "disconnected") run.disconnect = await this.#bus.disconnected;
      return run;
    } finally {
      deadline.clear();
      aborted.clear();
      watcher.stop();
    }
  }

  async #cancelPending(byPath: Map<string, JobRecord>, watcher: JobWatcher): Promise<void> {
    const pending = [...byPath.keys()].filter((path) => watcher.result(path) === undefined);
    if (pending.length === 0) return;
    const cancels = pending.map((path) =>
      this.#bus.call({ destination: DESTINATION, path, interface: JOB, member: "Cancel" }, {
        timeoutMs: CANCEL_GRACE_MS,
      }).catch(() => {
        // NoSuchJob (it ended meanwhile) or a lost bus: the result tells.
      })
    );
    const grace = timer(CANCEL_GRACE_MS);
    try {
      await Promise.race([
        Promise.all([...cancels, ...pending.map((path) => watcher.ended(path))]),
        grace.promise,
        this.#bus.disconnected,
      ]);
    } finally {
      grace.clear();
    }
  }

  /**
   * Starts kexec.target the way `systemctl kexec` does (job mode
   * replace-irreversibly): the manager stops every unit cleanly, then systemd-shutdown
   * issues the kexec. Resolves once the job is queued; the agent should then exit.
   */
  async startKexec(): Promise<void> {
    await this.#call(
      "StartUnit",
      "ss",
      ["kexec.target", "replace-irreversibly"],
      undefined,
      "kexec.target",
    );
  }

  /**
   * Manager.KExec(): the kexec without stopping units first (`systemctl --force
   * kexec`). Only system managers have it; a user manager answers NotSupported.
   */
  async kexecImmediately(): Promise<void> {
    await this.#call("KExec");
  }

  /** Closes the bus connection. */
  async close(): Promise<void> {
    await this.#bus.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The update flow on a mainline kernel (`/dev/liveupdate`, Linux 6.19+). The
 * kernel has no global prepare/finish state machine and preserves no devices:
 * client services (VMMs, databases) preserve their memfds in sessions the
 * session broker hands them (agent/sessions/), and the kernel serializes the
 * sessions inside reboot(2). So, compared with RFC v1:
 *
 * - preflight also refuses what would lose every session without an error
 *   anywhere: kexec-tools' own shutdown loader (`LOAD_KEXEC=true`), a running
 *   kernel without `kho=on liveupdate=on`, a kernel someone else loaded (it may
 *   come from kexec_load), a session broker that does not answer or is busy;
 * - instead of "prepare-kernel" the prepare runs a barrier, "prepare-sessions":
 *   every subscribed client must report READY within `sessions.ready_timeout`,
 *   or the update rolls back; its undo aborts the sessions (unpreserved);
 * - "did this boot follow the live update?" is decided from the record (the boot
 *   id it was prepared in, the liveupdate number before the kexec) and the
 *   handover the new kernel shows (`kho/in`, the new liveupdate number);
 * - finish verifies the handover by compatible strings and waits for the broker
 *   to settle every session (claimed and finished by its client, finished
 *   unclaimed, or lost) and records the outcome.
 *
 * @module
 */

import { verifyHandover } from "../compat/mod.ts";
import { AgentError, describeError } from "../errors.ts";
import { type Kernel, type LuoState, type SessionKernel } from "../kernel/mod.ts";
import { NO_DEVICES } from "../kernel/mainline/backend.ts";
import { isKhoTree } from "../kernel/mainline/kho.ts";
import {
  checkCmdline,
  checkKexecArguments,
  checkKexecToolsLoader,
} from "../kernel/mainline/preflight.ts";
import type { ClientProblem, SessionOutcome, SessionRecord } from "../sessions/mod.ts";
import type { AttemptRecord } from "../store/mod.ts";
import type { SessionsControl, UpdateContext } from "./context.ts";
import type { MainlinePlan, Plan } from "./plan.ts";
import type { Step } from "./steps.ts";

/** The barrier step's name (in place of RFC v1's "prepare-kernel"). */
export const SESSIONS_STEP = "prepare-sessions";

/** The session broker is not there to drive (an update on mainline needs it). */
export class SessionsUnavailableError extends AgentError {
  override name = "SessionsUnavailableError";
}

/** A client held up the barrier; the broker aborted the preparation. */
export class SessionsNotReadyError extends AgentError {
  override name = "SessionsNotReadyError";
  readonly clients: readonly ClientProblem[];

  constructor(message: string, clients: readonly ClientProblem[]) {
    super(message);
    this.clients = clients;
  }
}

function requireControl(context: UpdateContext): SessionsControl {
  if (context.sessions) return context.sessions;
  throw new SessionsUnavailableError(
    "This invocation of the agent cannot reach the session broker (an internal wiring error).",
  );
}

/** The boot id, or null when it cannot be read. */
function bootIdOf(context: UpdateContext): string | null {
  try {
    return context.facts.bootId();
  } catch (error) {
    context.log.warning(`This boot's id cannot be read: ${describeError(error)}`);
    return null;
  }
}

/**
 * The mainline part of preflight: fills `plan.mainline` and reports every
 * problem through `problem`. Reads only (kexec-tools' defaults, procfs, debugfs,
 * the broker's STATUS); changes nothing.
 */
export async function mainlinePreflight(
  context: UpdateContext,
  sessions: SessionKernel,
  plan: Plan,
  problem: (check: string, message: string) => void,
): Promise<void> {
  const { config } = context;
  const out = sessions.kho("out");
  const mainline: MainlinePlan = {
    device: sessions.device,
    bootId: bootIdOf(context),
    liveupdateNumber: isKhoTree(out) ? out.luo?.liveupdateNumber ?? null : null,
    socket: context.sessions?.socket ?? "",
    subscribers: [],
    devices: NO_DEVICES,
  };
  plan.mainline = mainline;

  // kexec-tools' shutdown loader would load with kexec_load when nothing is loaded.
  try {
    const loader = await checkKexecToolsLoader(context.fs, config.kexec.tools_defaults);
    if (!loader.ok) problem("kexec-tools-loader", loader.message);
  } catch (error) {
    problem(
      "kexec-tools-loader",
      `kexec-tools' defaults "${config.kexec.tools_defaults}" cannot be read ` +
        `(${describeError(error)}); the agent cannot tell whether its shutdown loader ` +
        "(LOAD_KEXEC) would load a kernel with kexec_load. Fix the file or kexec.tools_defaults.",
    );
  }

  // This kernel must hand sessions over at all.
  if (plan.running.cmdline !== "") {
    const running = checkCmdline(plan.running.cmdline, "running");
    if (!running.ok) problem("cmdline", running.message);
  }

  // A kernel already loaded may come from kexec_load; the agent loads its own.
  if (plan.kexecWasLoaded === true) {
    problem(
      "loaded-kernel",
      `A kexec kernel is already loaded (${config.paths.sysfs}/kernel/kexec_loaded is 1) and ` +
        "not by this update; it may have been loaded with kexec_load (kexec -l), which hands no " +
        "session over, and the agent will not replace someone else's kernel silently. Unload " +
        `it ('${config.kexec.binary} -u'); the agent loads the target with kexec_file_load ` +
        "itself.",
    );
  }
  if (plan.kexecArgs.length > 0) {
    const args = checkKexecArguments(plan.kexecArgs);
    if (!args.ok) problem("kexec", args.message);
  }

  // The broker must be there, idle, to run the barrier.
  if (!context.sessions) {
    problem("sessions", "The session broker cannot be reached from this invocation.");
    return;
  }
  try {
    const status = await context.sessions.status();
    mainline.subscribers = status.subscribers.map((s) => s.id);
    if (status.phase !== "idle") {
      problem(
        "sessions",
        `The session broker on ${context.sessions.socket} is ${status.phase}: another ` +
          "preparation is under way. Let it end, or abort it ('liveupdate-agent sessions abort').",
      );
    }
  } catch (error) {
    problem(
      "sessions",
      `The session broker does not answer on ${context.sessions.socket} ` +
        `(${describeError(error)}); start liveupdate-sessions.service. Without it no client's ` +
        "sessions would be held across the kexec.",
    );
  }
}

/** What the barrier step reports (JSON, in the journal). */
export interface SessionsStepResult {
  /** The sessions the broker holds for the kexec. */
  sessions: string[];
  /** How long the barrier took, in ms. */
  durationMs: number;
  /** The broker's record: the boot and the liveupdate number it prepared them in. */
  preparedBootId?: string;
  liveupdateNumber?: number | null;
  /** When the barrier failed: why, and which clients held it up. */
  reason?: string;
  clients?: ClientProblem[];
}

/**
 * The barrier: asks the broker to hand every subscribed client its session and
 * wait up to `sessions.ready_timeout` for every READY. A client that does not
 * answer, leaves, or a session the kernel refuses makes the step fail (the
 * broker has aborted by then: nothing stays preserved). Undo aborts the
 * sessions, which unpreserves them (idempotent: an idle or stopped broker holds
 * nothing).
 */
export function sessionsStep(
  context: UpdateContext,
): Step<{ socket: string }, SessionsStepResult> {
  const { clock, log, config } = context;
  return {
    name: SESSIONS_STEP,
    snapshot: () => Promise.resolve({ socket: context.sessions?.socket ?? "" }),
    async run() {
      const control = requireControl(context);
      const started = clock.monotonic();
      const result = await control.prepare(config.sessions.ready_timeout);
      const durationMs = Math.round(clock.monotonic() - started);
      if (!result.ok) {
        for (const client of result.clients) {
          log.event(
            "session-not-ready",
            `Client of session "${client.id}" held up the live update (${client.problem}): ` +
              `${client.detail}.`,
            { session: client.id },
          );
        }
        const error = new SessionsNotReadyError(
          `The session barrier failed: ${result.reason} Every session was aborted, nothing stays ` +
            "preserved.",
          result.clients,
        );
        const partialResult: SessionsStepResult = {
          sessions: [],
          durationMs,
          reason: result.reason,
          clients: [...result.clients],
        };
        throw Object.assign(error, { partialResult });
      }
      const record = await control.record().catch(() => null);
      log.event(
        "sessions-prepared",
        `Every client is ready: the session broker holds ${result.sessions.length} session(s) ` +
          `until the kexec${result.sessions.length ? ` (${result.sessions.join(", ")})` : ""}.`,
        { count: result.sessions.length },
      );
      return {
        sessions: result.sessions,
        durationMs,
        ...(record?.phase === "prepared"
          ? { preparedBootId: record.preparedBootId, liveupdateNumber: record.liveupdateNumber }
          : {}),
      };
    },
    async undo() {
      const control = requireControl(context);
      await control.abort(`the live update was rolled back`);
    },
  };
}

/** What the agent concluded about this boot, and from what. */
export interface MainlineBootFinding {
  /**
   * In the terms of the RFC state machine the flows decide by: "updated" (this boot
   * followed the live update), "prepared" (still the boot the update was prepared
   * in, sessions held), "normal" (anything else: a cold boot, a kexec that took
   * nothing over, or nothing prepared).
   */
  state: LuoState;
  /** One sentence saying why. */
  reason: string;
}

/**
 * Decides whether this boot follows the open attempt's live update: there is no
 * kernel state to read on mainline, so the record (the boot id and liveupdate
 * number before the kexec), the broker's session record and the incoming
 * handover (`kho/in`, the new outgoing liveupdate number) decide.
 */
export async function mainlineBootState(
  context: UpdateContext,
  sessions: SessionKernel,
  open: AttemptRecord | null | undefined,
): Promise<MainlineBootFinding> {
  if (!open) return { state: "normal", reason: "no attempt is open" };
  const plan = open.plan as unknown as Plan;
  const recorded = plan.mainline;
  const now = bootIdOf(context);
  if (recorded?.bootId && now !== null && recorded.bootId === now) {
    if (open.status !== "prepared" && open.status !== "kexec-issued") {
      return { state: "normal", reason: "still the boot the update was prepared in" };
    }
    // Same boot: the sessions are held only while the broker holds them.
    const held = await context.sessions?.status().then(
      (status) => status.phase === "prepared",
      () => false,
    );
    return held
      ? { state: "prepared", reason: "still the boot the update was prepared in, sessions held" }
      : {
        state: "normal",
        reason: "still the boot the update was prepared in, but the session broker holds no " +
          "prepared sessions (it was stopped or aborted)",
      };
  }
  if (open.status === "preparing" || open.status === "rolling-back") {
    return { state: "normal", reason: "the prepare did not complete" };
  }
  const incoming = sessions.kho("in");
  const outgoing = sessions.kho("out");
  if (!isKhoTree(incoming) || !incoming.hasLuo) {
    return {
      state: "normal",
      reason: isKhoTree(incoming)
        ? "the previous kernel handed no live-update sessions over (kho/in has no LUO)"
        : `nothing was handed over (${incoming.directory}: ${incoming.reason})`,
    };
  }
  const number = isKhoTree(outgoing) ? outgoing.luo?.liveupdateNumber ?? null : null;
  const expected = recorded?.liveupdateNumber ?? null;
  if (number !== null && expected !== null && number !== expected + 1) {
    return {
      state: "normal",
      reason:
        `this kernel's liveupdate number is ${number}, not ${expected + 1}: it did not take ` +
        "over the recorded update's state",
    };
  }
  const broker = await context.sessions?.record().catch(() => null);
  if (
    broker && recorded?.bootId && broker.preparedBootId === recorded.bootId &&
    broker.sessions.length > 0 && broker.sessions.every((s) => s.outcome === "lost")
  ) {
    return {
      state: "updated",
      reason: "the kernel took the handover over, but the broker found none of the sessions",
    };
  }
  return {
    state: "updated",
    reason: "the kernel took the live-update handover over" +
      (incoming.kexec ? ` from ${incoming.kexec.previousRelease}` : ""),
  };
}

/** The verify step's checks on mainline. */
export function verifyMainline(
  sessions: SessionKernel,
  record: AttemptRecord,
): { checks: { what: string; ok: boolean | null; detail: string }[]; problems: string[] } {
  const plan = record.plan as unknown as Plan;
  const empty = { kho: null, luo: null, fileHandlers: [] };
  const result = verifyHandover(
    {
      release: record.kernels.running.release ?? "",
      running: plan.running.compatible ?? empty,
      target: plan.target.compatible ?? empty,
      liveupdateNumber: plan.mainline?.liveupdateNumber ?? null,
    },
    sessions.kho("in"),
    sessions.kho("out"),
  );
  return {
    checks: result.checks,
    problems: result.checks.filter((check) => check.ok === false).map((check) =>
      `Handover check "${check.what}" failed: ${check.detail}.`
    ),
  };
}

/** What became of the sessions after the kexec (the finish step's result, `notes.sessions`). */
export interface SessionsSummary {
  /** Sessions handed over (as the broker recorded them before the kexec). */
  total: number;
  /** Claimed and finished by their clients. */
  finished: string[];
  /** Claimed and still in use (the client did not say FINISH yet). */
  claimed: string[];
  /** Not claimed in time: finished by the broker, their files dropped. */
  unclaimed: string[];
  /** Not handed over by the kernel (or not retrievable). */
  lost: { name: string; detail: string }[];
  /** Still waiting for a claim when the step stopped waiting. */
  waiting: string[];
  /** The broker's record phase when the step ended. */
  phase: SessionRecord["phase"] | "none";
  /** How long the step waited for the sessions to settle, in ms. */
  waitedMs: number;
}

function summarize(record: SessionRecord | null, waitedMs: number): SessionsSummary {
  const by = (outcome: SessionOutcome) =>
    (record?.sessions ?? []).filter((s) => (s.outcome ?? "waiting") === outcome).map((s) => s.name);
  return {
    total: record?.sessions.length ?? 0,
    finished: by("finished"),
    claimed: by("claimed"),
    unclaimed: by("finished-unclaimed"),
    lost: (record?.sessions ?? []).filter((s) => s.outcome === "lost").map((s) => ({
      name: s.name,
      detail: s.detail ?? "",
    })),
    waiting: by("waiting"),
    phase: record?.phase ?? "none",
    waitedMs,
  };
}

/**
 * Waits until the broker has settled every session of this update (claimed and
 * finished by its client, finished unclaimed after `sessions.claim_timeout`, or
 * lost), at most the claim timeout plus a minute, and returns what became of
 * them. Claims and their timeout are the broker's; this only reads its record.
 * Throws (with the summary as partial result) when a session was lost.
 */
export async function waitForSessions(
  context: UpdateContext,
  record: AttemptRecord,
): Promise<SessionsSummary> {
  const { clock, log, config } = context;
  const plan = record.plan as unknown as Plan;
  const preparedIn = plan.mainline?.bootId ?? null;
  const control = requireControl(context);
  const started = clock.monotonic();
  const deadline = started + config.sessions.claim_timeout + 60_000;
  let delay = 200;
  let current: SessionRecord | null = null;
  for (;;) {
    current = await control.record().catch((error) => {
      log.warning(`The session record cannot be read: ${describeError(error)}`);
      return null;
    });
    // Only the record of this update counts (a later preparation replaces it).
    if (current && preparedIn && current.preparedBootId !== preparedIn) current = null;
    if (current?.phase === "done" || clock.monotonic() >= deadline) break;
    if (current === null && clock.monotonic() - started > 10_000) break;
    await clock.sleep(Math.min(delay, Math.max(0, deadline - clock.monotonic())));
    delay = Math.min(delay * 2, 2000);
  }
  const summary = summarize(current, Math.round(clock.monotonic() - started));
  for (const name of summary.unclaimed) {
    log.event(
      "session-not-claimed",
      `Session "${name}" was not claimed within ${config.sessions.claim_timeout / 1000}s; the ` +
        "broker finished it and its files are gone.",
      { session: name },
    );
  }
  for (const lost of summary.lost) {
    log.event("session-lost", `Session "${lost.name}" did not survive the update: ${lost.detail}`, {
      session: lost.name,
    });
  }
  if (current === null) {
    throw Object.assign(
      new AgentError(
        "The session broker has no record of this update's sessions: it lost them, or it did not " +
          "start in this boot (liveupdate-sessions.service).",
      ),
      { partialResult: summary },
    );
  }
  if (summary.lost.length > 0) {
    throw Object.assign(
      new AgentError(
        `${summary.lost.length} of ${summary.total} session(s) did not survive the update: ` +
          summary.lost.map((l) => l.name).join(", ") + ".",
      ),
      { partialResult: summary },
    );
  }
  return summary;
}

/** Whether `kernel` is driven by the mainline flow (it has sessions). */
export function isMainline(kernel: Kernel): kernel is Kernel & { sessions: SessionKernel } {
  return kernel.sessions !== undefined && kernel.sessions !== null;
}

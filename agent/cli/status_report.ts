/**
 * What `liveupdate-agent status` reports, gathered without changing anything: a
 * one-line summary of what the agent is doing, the kernel's live-update support
 * (every backend probed), its state, the incoming handover, the compatibility of
 * the configured target, the last attempts and the fleet. The JSON document
 * (`status --json`, schema agent/cli/schemas/status.v1.schema.json) is this
 * object, with the same fields on every backend (the backend named in
 * `kernel.backend`; `kernel.sessions` is null where the kernel has no sessions);
 * its `version` changes only when a field changes meaning or disappears.
 *
 * @module
 */

import {
  assessCompatibility,
  formatLuoVersion,
  type KernelSide,
  type VerdictOutcome,
} from "../compat/mod.ts";
import type { LoadedConfig } from "../config/mod.ts";
import { describeError } from "../errors.ts";
import { type FleetRuntimeState, readFleetState } from "../fleet/mod.ts";
import type { FileSystem } from "../host/mod.ts";
import {
  type BackendChoice,
  type BackendName,
  detectKernel,
  HandoverError,
  kernelContext,
  type KernelFeatures,
  type LuoState,
  type LuoVersion,
  PROVIDERS,
  readIncomingHandover,
  type SessionKernel,
} from "../kernel/mod.ts";
import { NO_DEVICES, releaseAtLeast, runningRelease } from "../kernel/mainline/backend.ts";
import { isKhoTree } from "../kernel/mainline/kho.ts";
import { checkCmdline } from "../kernel/mainline/preflight.ts";
import type { Logger } from "../log/mod.ts";
import { sessionsStatus } from "../sessions/client.ts";
import { type AttemptRecord, AttemptStore, TERMINAL_STATUSES } from "../store/mod.ts";
import { sessionsSocket } from "./sessions_command.ts";
import { VERSION } from "../version.ts";
import { type AttemptSummary, summarizeAttempt } from "./attempts_view.ts";
import { type Platform, procFactsOf } from "./platform.ts";

/** Version of the `status --json` document. */
export const STATUS_JSON_VERSION = 1;

/** One kernel in the compatibility section. */
export interface StatusKernelSide {
  image: string | null;
  release: string | null;
  releaseSource: string | null;
  /** "MAJOR.MINOR", or null when unknown. */
  version: string | null;
  versionSource: "config" | "metadata" | null;
  metadataFile: string | null;
  problem: string | null;
  note: string | null;
  /** The handover compatible strings (mainline kernels), or null. */
  compatible: { kho: string | null; luo: string | null; fileHandlers: string[] } | null;
}

/** The session part of a mainline kernel (`kernel.sessions`). */
export interface StatusSessions {
  /** The character device. */
  device: string;
  /** Whether the running kernel's command line turns KHO and live update on. */
  cmdline: { ok: boolean; message: string } | null;
  /** Whether the kernel has the GET_NAME ioctl (Linux 7.2+); null when unknown. */
  getNameIoctl: boolean | null;
  /** Devices are never preserved on this interface. */
  devices: { preserved: false; reason: string };
  /** What this kernel will hand over (debugfs kho/out). */
  outgoing: {
    kho: string | null;
    luo: string | null;
    liveupdateNumber: number | null;
    problem: string | null;
  };
  /** What the previous kernel handed over (debugfs kho/in). */
  incoming: {
    kho: string | null;
    previousRelease: string | null;
    kexecCount: number | null;
    problem: string | null;
  };
  /** The session broker (liveupdate-sessions.service). */
  broker: {
    socket: string;
    running: boolean;
    phase: string | null;
    subscribers: { id: string; pid: number; state: string }[];
    incoming: { name: string; outcome: string }[];
    problem: string | null;
  };
}

/** How many attempts `status` shows. */
export const RECENT_ATTEMPTS = 5;

/** What the agent is doing, in one word. */
export type ActiveState = "idle" | "updating" | "failed" | "unavailable";

/** The `status --json` document. */
export interface StatusReport {
  version: typeof STATUS_JSON_VERSION;
  /** What the agent is doing, and the sentence `status` shows first. */
  summary: {
    state: ActiveState;
    sentence: string;
    /** The attempt the sentence is about, if any. */
    attempt: string | null;
    /** Since when the agent is in this state: the attempt's start or end, if known. */
    since: string | null;
  };
  agent: { version: string };
  config: { sources: string[] };
  kernel: {
    /** Whether the agent can drive the kernel's live-update interface. */
    available: boolean;
    /** `kernel.backend`. */
    choice: BackendChoice;
    /** The backend in use, when available. */
    backend: BackendName | null;
    location: string | null;
    /** Why it is not available (null when it is). */
    reason: string | null;
    /** The paths whose absence made it unavailable. */
    missing: string[];
    features: KernelFeatures | null;
    state: LuoState | null;
    /** Why the state could not be read, when it could not. */
    stateError: string | null;
    /** The session part (mainline `/dev/liveupdate`), or null when the kernel has none. */
    sessions: StatusSessions | null;
    /** What each backend's probe found. */
    probes: {
      backend: BackendName;
      location: string;
      present: boolean;
      usable: boolean;
      summary: string;
      problems: string[];
      missing: string[];
    }[];
  };
  /** What the previous kernel handed over (incoming KHO). */
  handover: {
    status: "present" | "absent" | "unavailable" | "invalid";
    file: string;
    /** The previous kernel's LUO ABI version ("1.0"), when present. */
    version: string | null;
    detail: string | null;
  };
  compat: {
    running: StatusKernelSide;
    target: StatusKernelSide;
    verdict: { outcome: VerdictOutcome; allowed: boolean; override: boolean; sentence: string };
  };
  /** The attempts recorded under `paths.state_dir`. */
  attempts: {
    dir: string;
    /** How many ended attempts are kept (`store.history`). */
    keep: number;
    total: number;
    /** The newest {@link RECENT_ATTEMPTS}, newest first. */
    recent: AttemptSummary[];
    /**
     * The attempt still open, if any: the newest that is not `refused` (a refused
     * attempt changed nothing, so it never hides an open one) and has not ended.
     */
    open: string | null;
    /** Record files that cannot be used (`recover` sets them aside). */
    unreadable: { path: string; problem: string }[];
    /** Why the records could not be listed, if they could not. */
    problem: string | null;
  };
  fleet: {
    backend: string;
    group: string;
    /** This host's fleet state file (`<paths.runtime_dir>/fleet.json`), if any. */
    state: FleetRuntimeState | null;
  };
}

const version = (value: LuoVersion | null) => (value ? formatLuoVersion(value) : null);

function sideJson(side: KernelSide): StatusKernelSide {
  const { compatible, ...rest } = side;
  return { ...rest, version: version(side.version), compatible: compatible ?? null };
}

/** What the session part of a mainline kernel shows, and the broker's state. */
async function sessionsSection(
  context: StatusContext,
  sessions: SessionKernel,
): Promise<StatusSessions> {
  const { config } = context.loaded;
  const kctx = kernelContext(config, {
    fs: context.platform.kernelFs(),
    libc: context.platform.libc,
  });
  const release = runningRelease(kctx);
  let cmdline: StatusSessions["cmdline"] = null;
  try {
    const finding = checkCmdline(procFactsOf(context.platform, config).cmdline(), "running");
    cmdline = { ok: finding.ok, message: finding.message };
  } catch {
    // Unreadable: unknown.
  }
  const out = sessions.kho("out");
  const into = sessions.kho("in");
  const socket = sessionsSocket(config);
  const broker: StatusSessions["broker"] = {
    socket,
    running: false,
    phase: null,
    subscribers: [],
    incoming: [],
    problem: null,
  };
  try {
    const status = await sessionsStatus(context.platform.libc(), socket);
    broker.running = true;
    broker.phase = status.phase;
    broker.subscribers = status.subscribers;
    broker.incoming = status.incoming.map((i) => ({ name: i.name, outcome: i.outcome }));
  } catch (error) {
    broker.problem = `The session broker does not answer on ${socket}: ${describeError(error)}`;
  }
  return {
    device: sessions.device,
    cmdline,
    getNameIoctl: release === null ? null : releaseAtLeast(release, 7, 2),
    devices: { preserved: false, reason: NO_DEVICES },
    outgoing: isKhoTree(out)
      ? {
        kho: out.kho,
        luo: out.luo?.compatible ?? null,
        liveupdateNumber: out.luo?.liveupdateNumber ?? null,
        problem: out.problems.length ? out.problems.join("; ") : null,
      }
      : {
        kho: null,
        luo: null,
        liveupdateNumber: null,
        problem: `${out.directory}: ${out.reason}`,
      },
    incoming: isKhoTree(into)
      ? {
        kho: into.kho,
        previousRelease: into.kexec?.previousRelease ?? null,
        kexecCount: into.kexec?.kexecCount ?? null,
        problem: into.problems.length ? into.problems.join("; ") : null,
      }
      : {
        kho: null,
        previousRelease: null,
        kexecCount: null,
        problem: `${into.directory}: ${into.reason}`,
      },
    broker,
  };
}

/** What {@link gatherStatus} reads through. */
export interface StatusContext {
  /** Ordinary files (the compatibility metadata, the target image). */
  fs: FileSystem;
  /** The kernel's files (sysfs, debugfs, procfs). */
  platform: Platform;
  loaded: LoadedConfig;
  log?: Logger;
}

/** Gathers the status report. Reads only; never throws for what the host lacks. */
export async function gatherStatus(context: StatusContext): Promise<StatusReport> {
  const { config, sources } = context.loaded;
  const kernelFs = context.platform.kernelFs();
  const kctx = kernelContext(config, {
    fs: kernelFs,
    libc: context.platform.libc,
    log: context.log,
  });
  const detection = await detectKernel(kctx, config.kernel.backend);
  const selected = detection.selected;
  const kernel = selected
    ? PROVIDERS.find((provider) => provider.name === selected.backend)!.open(kctx, selected)
    : undefined;

  let state: LuoState | null = null;
  let stateError: string | null = null;
  if (kernel?.stateMachine) {
    try {
      state = await kernel.stateMachine.state();
    } catch (error) {
      stateError = error instanceof Error ? error.message : String(error);
    }
  }

  let handover: StatusReport["handover"];
  try {
    const incoming = kernel
      ? await kernel.incoming()
      : await readIncomingHandover(kernelFs, config.paths.debugfs);
    handover = incoming.status === "present"
      ? {
        status: "present",
        file: incoming.file,
        version: version(incoming.version),
        detail: incoming.detail ?? null,
      }
      : { status: incoming.status, file: incoming.file, version: null, detail: incoming.detail };
  } catch (error) {
    if (!(error instanceof HandoverError)) throw error;
    handover = { status: "invalid", file: error.file, version: null, detail: error.message };
  }

  const sessions = kernel?.sessions ? await sessionsSection(context, kernel.sessions) : null;
  const compat = await assessCompatibility({
    fs: context.fs,
    releases: procFactsOf(context.platform, config),
    config,
    ...(kernel ? { backend: kernel.backend } : {}),
    ...(kernel?.sessions ? { outgoing: kernel.sessions.kho("out") } : {}),
  });

  const store = new AttemptStore(context.fs, config.paths.state_dir, config.store.history);
  let openRecord: AttemptRecord | undefined;
  const attempts: StatusReport["attempts"] = {
    dir: store.dir,
    keep: config.store.history,
    total: 0,
    recent: [],
    open: null,
    unreadable: [],
    problem: null,
  };
  try {
    const { records, unreadable } = await store.list();
    attempts.total = records.length;
    attempts.recent = records.slice(0, RECENT_ATTEMPTS).map(summarizeAttempt);
    const newest = records.find((record) => record.status !== "refused");
    if (newest && !TERMINAL_STATUSES.has(newest.status)) {
      attempts.open = newest.id;
      openRecord = newest;
    }
    attempts.unreadable = unreadable.map(({ path, problem }) => ({ path, problem }));
  } catch (error) {
    attempts.problem = describeError(error);
  }

  let fleetState: FleetRuntimeState | null = null;
  if (config.fleet.backend !== "none") {
    fleetState = await readFleetState(context.fs, config.paths.runtime_dir).catch((error) => {
      context.log?.warning(describeError(error));
      return undefined;
    }) ?? null;
  }

  const report: Omit<StatusReport, "summary"> = {
    version: STATUS_JSON_VERSION,
    agent: { version: VERSION },
    config: { sources: [...sources] },
    kernel: {
      available: kernel !== undefined,
      choice: detection.choice,
      backend: kernel?.backend ?? null,
      location: kernel?.location ?? null,
      reason: detection.reason ?? null,
      missing: detection.missing,
      features: kernel?.features ?? null,
      state,
      stateError,
      sessions,
      probes: detection.probes.map((probe) => ({
        backend: probe.backend,
        location: probe.location,
        present: probe.present,
        usable: probe.usable,
        summary: probe.summary,
        problems: probe.problems,
        missing: probe.missing,
      })),
    },
    handover,
    compat: {
      running: sideJson(compat.running),
      target: sideJson(compat.target),
      verdict: { ...compat.verdict },
    },
    attempts,
    fleet: { backend: config.fleet.backend, group: config.fleet.group, state: fleetState },
  };
  const { version: documentVersion, ...rest } = report;
  return { version: documentVersion, summary: summarize(report, openRecord), ...rest };
}

const OPEN_PHRASES: Record<string, string> = {
  preparing: "is being prepared",
  prepared: "is prepared and waits for the kexec or a cancel",
  "kexec-issued": "issued the kexec and waits for the new kernel",
  finishing: "is being finished in the new kernel",
  "rolling-back": "is being rolled back",
};

/**
 * The summary: what the agent is doing, from the attempts and the kernel. `open` is
 * the open attempt's record (for what its rollback left).
 */
export function summarize(
  report: Omit<StatusReport, "summary">,
  open?: AttemptRecord,
): StatusReport["summary"] {
  const newest = report.attempts.recent[0];
  if (open) {
    const rollback = open.notes.rollback as { incomplete?: unknown } | undefined;
    if (open.status === "rolling-back" && rollback?.incomplete) {
      return {
        state: "failed",
        sentence: `Attempt ${open.id} could not be rolled back completely; fix the cause and run ` +
          "'liveupdate-agent recover' ('liveupdate-agent history latest' shows what is left).",
        attempt: open.id,
        since: open.updated,
      };
    }
    return {
      state: "updating",
      sentence: `Attempt ${open.id} ${OPEN_PHRASES[open.status] ?? open.status}.`,
      attempt: open.id,
      since: open.created,
    };
  }
  const { kernel } = report;
  if (!kernel.available) {
    return {
      state: "unavailable",
      sentence: kernel.reason ?? "The running kernel offers no live-update interface.",
      attempt: null,
      since: null,
    };
  }
  if (kernel.state === "prepared" || kernel.state === "updated") {
    return {
      state: "updating",
      sentence: `The kernel is in state "${kernel.state}" but no attempt of this agent is ` +
        "open; 'liveupdate-agent recover' decides what to do.",
      attempt: null,
      since: null,
    };
  }
  if (report.attempts.unreadable.length > 0 || report.attempts.problem) {
    return {
      state: "failed",
      sentence: report.attempts.problem
        ? `The attempt records cannot be read: ${report.attempts.problem}`
        : `${report.attempts.unreadable.length} attempt record(s) cannot be used; ` +
          "'liveupdate-agent recover' sets them aside and brings the host to a known state.",
      attempt: null,
      since: null,
    };
  }
  if (!newest) {
    return { state: "idle", sentence: "No update recorded.", attempt: null, since: null };
  }
  if (newest.status === "failed") {
    return {
      state: "failed",
      sentence: `The last attempt ${newest.id} failed: ${newest.message ?? "no message"}`,
      attempt: newest.id,
      since: newest.ended_at,
    };
  }
  return {
    state: "idle",
    sentence: newest.status === "succeeded"
      ? `The last update ${newest.id} succeeded.`
      : `The last attempt ${newest.id} ended ${newest.status}: ${newest.message ?? "no message"}`,
    attempt: newest.id,
    since: newest.ended_at,
  };
}

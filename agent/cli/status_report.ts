/**
 * What `liveupdate-agent status` reports, gathered without changing anything: the
 * kernel's live-update support (every backend probed), its state, the incoming
 * handover, and the compatibility of the configured target. The JSON document
 * (`status --json`) is this object, with the same fields on every backend (the
 * backend named in `kernel.backend`; `kernel.sessions` is null where the kernel
 * has no sessions); its `version` changes only when a field changes meaning or
 * disappears.
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
import { sessionsSocket } from "./sessions_command.ts";
import { VERSION } from "../version.ts";
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

/** The `status --json` document. */
export interface StatusReport {
  version: typeof STATUS_JSON_VERSION;
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

  return {
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
  };
}

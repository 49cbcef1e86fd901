/**
 * What `liveupdate-agent status` reports, gathered without changing anything: the
 * kernel's live-update support (every backend probed), its state, the incoming
 * handover, and the compatibility of the configured target. The JSON document
 * (`status --json`) is this object; its `version` changes only when a field
 * changes meaning or disappears.
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
} from "../kernel/mod.ts";
import type { Logger } from "../log/mod.ts";
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
  return { ...side, version: version(side.version) };
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
      ? { status: "present", file: incoming.file, version: version(incoming.version), detail: null }
      : { status: incoming.status, file: incoming.file, version: null, detail: incoming.detail };
  } catch (error) {
    if (!(error instanceof HandoverError)) throw error;
    handover = { status: "invalid", file: error.file, version: null, detail: error.message };
  }

  const compat = await assessCompatibility({
    fs: context.fs,
    releases: procFactsOf(context.platform, config),
    config,
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

/**
 * The compatibility check as the agent runs it: find the running and the target
 * kernel's releases, their LUO ABI versions (a configured override first, else
 * the metadata the OS image ships), and the verdict. On a mainline kernel
 * (`backend` "mainline") the verdict compares compatible strings instead
 * (compatible.ts): the running kernel's from its outgoing KHO tree and its
 * metadata, the target's from its metadata.
 *
 * @module
 */

import type { Config } from "../config/mod.ts";
import type { FileSystem } from "../host/mod.ts";
import type { BackendName, IncomingHandover, LuoVersion } from "../kernel/mod.ts";
import type { KhoTree, KhoUnavailable } from "../kernel/mainline/kho.ts";
import { CompatError } from "./compat_error.ts";
import { compareHandoverAbi, type HandoverAbi, runningHandoverAbi } from "./compatible.ts";
import { type AbiMetadata, metadataPath, readAbiMetadata } from "./metadata.ts";
import {
  type ReleaseFinding,
  type ReleaseSource,
  runningRelease,
  targetRelease,
} from "./release.ts";
import { decideCompatibility, type Verdict, type VersionKnowledge } from "./verdict.ts";
import { formatLuoVersion, parseLuoVersion } from "./version.ts";

/** What the check found about one kernel. */
export interface KernelSide {
  /** The kernel image (the target's `target.kernel`; null for the running kernel). */
  image: string | null;
  release: string | null;
  releaseSource: "uname" | "image header" | "file name" | null;
  version: LuoVersion | null;
  versionSource: "config" | "metadata" | null;
  /** The metadata file looked at (whether or not it exists). */
  metadataFile: string | null;
  /** Why the version is unknown or invalid. */
  problem: string | null;
  /** Something worth telling although the version is known. */
  note: string | null;
  /**
   * The handover compatible strings (mainline kernels): present when the backend is
   * mainline or the metadata names them, absent otherwise.
   */
  compatible?: HandoverAbi | null;
}

/** The whole check: both kernels and the verdict. */
export interface CompatReport {
  running: KernelSide;
  target: KernelSide;
  verdict: Verdict;
}

/** What the check needs. */
export interface CompatContext {
  fs: FileSystem;
  releases: ReleaseSource;
  config: Config;
  /**
   * Whose rule decides: "mainline" compares compatible strings; anything else (or
   * none) the RFC v1 LUO version.
   */
  backend?: BackendName;
  /**
   * The running kernel's outgoing handover as debugfs shows it (mainline: its LUO
   * format, trusted over the metadata).
   */
  outgoing?: KhoTree | KhoUnavailable;
}

interface SideFinding {
  side: KernelSide;
  knowledge: VersionKnowledge;
  /** The metadata read, when it was read and well-formed. */
  metadata?: AbiMetadata;
  /** Why the metadata is malformed, when it is. */
  malformed?: string;
}

async function side(
  context: CompatContext,
  role: "running" | "target",
  found: ReleaseFinding | null,
  image: string | null,
): Promise<SideFinding> {
  const { config } = context;
  const key = role === "running" ? "compat.running_version" : "compat.target_version";
  const setting = role === "running" ? config.compat.running_version : config.compat.target_version;
  const result: KernelSide = {
    image,
    release: found?.release ?? null,
    releaseSource: found && found.release !== null ? found.source : null,
    version: null,
    versionSource: null,
    metadataFile: null,
    problem: null,
    note: found && found.release !== null ? found.note ?? null : null,
  };
  if (setting !== "" && context.backend !== "mainline") {
    const version = parseLuoVersion(setting);
    if (!version) {
      // The schema admits only MAJOR.MINOR; a value past u32 still lands here.
      result.problem = `${key} ${JSON.stringify(setting)} is not a LUO ABI version`;
      return { side: result, knowledge: { invalid: `setting ${result.problem}` } };
    }
    result.version = version;
    result.versionSource = "config";
    return { side: result, knowledge: { version, from: key } };
  }
  if (!found || found.release === null) {
    result.problem = found?.problem ??
      "No target kernel is configured (target.kernel) and compat.target_version is not set.";
    return { side: result, knowledge: { unknown: result.problem } };
  }
  const file = metadataPath(config.compat.modules_dir, found.release);
  result.metadataFile = file;
  try {
    const metadata = await readAbiMetadata(context.fs, config.compat.modules_dir, found.release);
    if (!metadata) {
      result.problem = `no ${file}`;
      return { side: result, knowledge: { unknown: result.problem } };
    }
    if (metadata.compatible) result.compatible = metadata.compatible;
    if (!metadata.luoVersion) {
      result.problem = `${file} has no LUO_VERSION (it describes a mainline kernel)`;
      return { side: result, knowledge: { unknown: result.problem }, metadata };
    }
    result.version = metadata.luoVersion;
    result.versionSource = "metadata";
    return { side: result, knowledge: { version: metadata.luoVersion, from: file }, metadata };
  } catch (error) {
    if (!(error instanceof CompatError)) throw error;
    result.problem = error.message.replace(/\.$/, "");
    return {
      side: result,
      knowledge: { invalid: `metadata: ${result.problem}` },
      malformed: result.problem,
    };
  }
}

/**
 * The verdict on a mainline pair: the compatible strings of both kernels must be
 * equal (compatible.ts). Fills in each side's `compatible`; an unknown string is
 * refused unless `compat.allow_unknown`, a malformed metadata file always.
 */
function mainlineVerdict(
  context: CompatContext,
  running: SideFinding,
  target: SideFinding,
): Verdict {
  const empty: HandoverAbi = { kho: null, luo: null, fileHandlers: [] };
  const outgoing = context.outgoing ?? {
    direction: "out" as const,
    directory: `${context.config.paths.debugfs}/kho/out`,
    reason: "not read",
  };
  const merged = runningHandoverAbi(outgoing, running.metadata?.compatible ?? null);
  running.side.compatible = merged.abi.luo !== null || merged.abi.kho !== null ||
      merged.abi.fileHandlers.length > 0
    ? merged.abi
    : null;
  // The version fields are RFC v1's; on mainline the strings are what counts.
  running.side.problem = running.side.compatible
    ? null
    : running.malformed ?? running.side.problem ?? merged.problems.join("; ");
  const notes = merged.problems.filter((problem) =>
    !problem.startsWith("the running kernel ships no liveupdate-abi") || running.side.compatible
  );
  if (notes.length > 0) running.side.note = notes.join("; ");
  target.side.compatible = target.metadata?.compatible ?? null;
  if (target.side.compatible) target.side.problem = null;
  const malformed = [["running", running], ["target", target]] as const;
  const invalid = malformed.filter(([, finding]) => finding.malformed !== undefined);
  if (invalid.length > 0) {
    return {
      outcome: "invalid",
      allowed: false,
      override: false,
      sentence: `Refused: ${
        invalid.map(([role, finding]) => `the ${role} kernel's metadata: ${finding.malformed}`)
          .join(", and ")
      }; fix it.`,
    };
  }
  const compared = compareHandoverAbi(
    running.side.compatible ?? empty,
    target.side.compatible ?? empty,
  );
  if (compared.verdict === "compatible") {
    return { outcome: "compatible", allowed: true, override: false, sentence: compared.message };
  }
  if (compared.verdict === "incompatible") {
    return {
      outcome: "incompatible",
      allowed: false,
      override: false,
      sentence: `Refused: ${compared.message}`,
    };
  }
  const why = [running, target].map((finding) => finding.side.problem).filter(Boolean);
  const sentence = compared.message + (why.length ? ` (${why.join("; ")})` : "");
  return context.config.compat.allow_unknown
    ? {
      outcome: "unknown",
      allowed: true,
      override: true,
      sentence: `Allowed only by compat.allow_unknown: ${sentence}`,
    }
    : { outcome: "unknown", allowed: false, override: false, sentence: `Refused: ${sentence}` };
}

/**
 * Checks the running kernel against the configured target, by the rule of
 * `context.backend`. Never throws for missing or malformed metadata: the verdict
 * says what is wrong. Needs read access to `compat.modules_dir` and the target
 * image (Deno's file API).
 */
export async function assessCompatibility(context: CompatContext): Promise<CompatReport> {
  const { config } = context;
  const running = await side(context, "running", runningRelease(context.releases), null);
  const image = config.target.kernel === "" ? null : config.target.kernel;
  const targetFound = image === null
    ? null
    : await targetRelease(context.fs, image, config.compat.modules_dir);
  const target = await side(context, "target", targetFound, image);
  const verdict = context.backend === "mainline"
    ? mainlineVerdict(context, running, target)
    : decideCompatibility(running.knowledge, target.knowledge, config.compat.allow_unknown);
  return { running: running.side, target: target.side, verdict };
}

/** How the handover the new kernel received compares with what was recorded before the kexec. */
export interface HandoverCheck {
  /** True when the incoming version is the one recorded for the previous kernel. */
  matches: boolean;
  sentence: string;
}

/**
 * Compares the incoming KHO data after a live-update boot with the LUO ABI
 * version recorded for the previous kernel before the kexec.
 */
export function checkHandover(
  recorded: LuoVersion | null,
  incoming: IncomingHandover,
): HandoverCheck {
  if (incoming.status !== "present") {
    return {
      matches: false,
      sentence: incoming.status === "absent"
        ? `No live-update handover arrived: ${incoming.detail}`
        : `The handover cannot be checked: ${incoming.detail}`,
    };
  }
  if (incoming.version === null) {
    return {
      matches: false,
      sentence: `The handover in ${incoming.file} has no version property.`,
    };
  }
  const got = formatLuoVersion(incoming.version);
  if (recorded === null) {
    return {
      matches: false,
      sentence:
        `The previous kernel handed over LUO ABI ${got}; no version was recorded to compare.`,
    };
  }
  const want = formatLuoVersion(recorded);
  return got === want
    ? { matches: true, sentence: `The previous kernel handed over LUO ABI ${got}, as recorded.` }
    : {
      matches: false,
      sentence: `The previous kernel handed over LUO ABI ${got}, but ${want} was recorded ` +
        "before the kexec: the metadata or the compat settings are wrong.",
    };
}

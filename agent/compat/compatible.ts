/**
 * Handover compatibility on mainline kernels (`/dev/liveupdate`). Unlike the RFC's
 * major/minor version, mainline names every handover format with a compatible
 * string: the KHO tree ("kho-v4"), the LUO header ("luo-v5", which also covers the
 * session format) and each file handler ("memfd-v2"). The next kernel refuses —
 * panics — on a LUO header it does not know, and cannot restore files whose
 * handler it lacks, so the strings of the running and the target kernel must be
 * equal.
 *
 * Where the strings come from:
 * - the running kernel: its outgoing KHO tree in debugfs (LUO header; the KHO
 *   string when debugfs shows the whole tree) and its shipped metadata file (file
 *   handlers, which live in memory debugfs does not show);
 * - the target: its shipped metadata file, `<modules_dir>/<release>/liveupdate-abi`
 *   (`LUO_COMPATIBLE=`, `KHO_COMPATIBLE=`, `LUO_FILE_HANDLERS=`; metadata.ts).
 *
 * After the kexec, {@link verifyHandover} checks the record against what the new
 * kernel shows.
 *
 * @module
 */

import { isKhoTree, type KhoTree, type KhoUnavailable } from "../kernel/mainline/kho.ts";

/** A kernel's handover formats. */
export interface HandoverAbi {
  kho: string | null;
  luo: string | null;
  /** File-handler compatible strings ("memfd-v2"). */
  fileHandlers: string[];
}

/**
 * The running kernel's formats: the outgoing KHO tree where debugfs shows it,
 * the metadata file for the rest. Problems (disagreement between the two,
 * unreadable parts) are returned for the record, not thrown.
 */
export function runningHandoverAbi(
  out: KhoTree | KhoUnavailable,
  metadata: HandoverAbi | null,
): { abi: HandoverAbi; problems: string[] } {
  const problems: string[] = [];
  const abi: HandoverAbi = {
    kho: metadata?.kho ?? null,
    luo: metadata?.luo ?? null,
    fileHandlers: metadata?.fileHandlers ?? [],
  };
  if (!metadata) problems.push("the running kernel ships no liveupdate-abi metadata");
  if (isKhoTree(out)) {
    for (const [key, found] of [["kho", out.kho], ["luo", out.luo?.compatible ?? null]] as const) {
      if (found === null) continue;
      if (abi[key] !== null && abi[key] !== found) {
        problems.push(
          `the metadata says ${key}=${
            abi[key]
          } but the kernel hands over ${found}; trusting the kernel`,
        );
      }
      abi[key] = found;
    }
  } else {
    problems.push(`${out.directory}: ${out.reason}`);
  }
  return { abi, problems };
}

/** One compared format. */
export interface CompatCheck {
  /** "kho", "luo" or "file-handler memfd". */
  what: string;
  running: string | null;
  target: string | null;
  result: "equal" | "different" | "unknown";
}

/** The verdict on a pair of kernels. */
export interface CompatVerdict {
  verdict: "compatible" | "incompatible" | "unknown";
  checks: CompatCheck[];
  /** One sentence for the operator. */
  message: string;
}

function family(compatible: string): string {
  return compatible.replace(/-v\d+$/, "");
}

/**
 * Compares the formats of the running and the target kernel: KHO and LUO must
 * be equal, and the target must have every file handler of the running kernel
 * in the same version.
 */
export function compareHandoverAbi(running: HandoverAbi, target: HandoverAbi): CompatVerdict {
  const checks: CompatCheck[] = [];
  const compare = (what: string, a: string | null, b: string | null) =>
    checks.push({
      what,
      running: a,
      target: b,
      result: a === null || b === null ? "unknown" : a === b ? "equal" : "different",
    });
  compare("kho", running.kho, target.kho);
  compare("luo", running.luo, target.luo);
  const targetKnown = target.kho !== null || target.luo !== null || target.fileHandlers.length > 0;
  for (const handler of running.fileHandlers) {
    const counterpart = target.fileHandlers.find((h) => family(h) === family(handler)) ?? null;
    if (counterpart === null && targetKnown) {
      // The target's metadata lists its handlers; this one is not among them.
      checks.push({
        what: `file-handler ${family(handler)}`,
        running: handler,
        target: null,
        result: "different",
      });
    } else {
      compare(`file-handler ${family(handler)}`, handler, counterpart);
    }
  }
  if (running.fileHandlers.length === 0) compare("file-handlers", null, null);
  const different = checks.filter((c) => c.result === "different");
  const unknown = checks.filter((c) => c.result === "unknown");
  if (different.length > 0) {
    return {
      verdict: "incompatible",
      checks,
      message: "The target kernel cannot take the sessions over: " +
        different.map((c) => `${c.what} ${c.running} here, ${c.target ?? "none"} there`).join(
          "; ",
        ) +
        ". The new kernel would panic or drop the files; pick a target with the same formats.",
    };
  }
  if (unknown.length > 0) {
    return {
      verdict: "unknown",
      checks,
      message: "Compatibility cannot be established: " +
        unknown.map((c) =>
          `${c.what} is unknown for the ${c.running === null ? "running" : "target"} kernel`
        )
          .join("; ") +
        ". Ship liveupdate-abi metadata with each kernel, or set compat.allow_unknown.",
    };
  }
  return {
    verdict: "compatible",
    checks,
    message: `Compatible: ${checks.map((c) => c.running).join(", ")}.`,
  };
}

/** What the update flow recorded before the kexec, for {@link verifyHandover}. */
export interface HandoverExpectation {
  /** The running kernel's release (uname -r) before the kexec. */
  release: string;
  /** Its formats. */
  running: HandoverAbi;
  /** The target's formats. */
  target: HandoverAbi;
  /** The outgoing liveupdate number before the kexec (from debugfs), if read. */
  liveupdateNumber: number | null;
}

/** The result of {@link verifyHandover}. */
export interface HandoverVerification {
  ok: boolean;
  checks: { what: string; ok: boolean | null; detail: string }[];
}

/**
 * After the kexec: did this kernel take the recorded handover over? Checks the
 * incoming tree (KHO format, the previous release, kexec count), that the LUO
 * state was taken over (the outgoing liveupdate number is the recorded one plus
 * one; the kernel frees the incoming LUO header after boot, so debugfs cannot
 * show it), and that this kernel speaks the recorded target's formats.
 * A check that cannot be made is `ok: null` and does not fail the verdict.
 */
export function verifyHandover(
  expected: HandoverExpectation,
  incoming: KhoTree | KhoUnavailable,
  outgoing: KhoTree | KhoUnavailable,
): HandoverVerification {
  const checks: HandoverVerification["checks"] = [];
  if (!isKhoTree(incoming)) {
    checks.push({ what: "kho-in", ok: false, detail: `${incoming.directory}: ${incoming.reason}` });
  } else {
    checks.push({
      what: "kho-format",
      ok: incoming.kho === null ? null : incoming.kho === expected.running.kho,
      detail: `handed over ${incoming.kho ?? "unknown"}, recorded ${
        expected.running.kho ?? "unknown"
      }`,
    });
    checks.push({
      what: "previous-release",
      ok: incoming.kexec === null ? null : incoming.kexec.previousRelease === expected.release,
      detail: incoming.kexec
        ? `previous kernel ${incoming.kexec.previousRelease} (kexec ${incoming.kexec.kexecCount} ` +
          `since the last cold boot), recorded ${expected.release}`
        : "no kexec metadata handed over",
    });
  }
  if (isKhoTree(outgoing) && outgoing.luo) {
    const number = outgoing.luo.liveupdateNumber;
    checks.push({
      what: "luo-taken-over",
      ok: number === null || expected.liveupdateNumber === null
        ? null
        : number === expected.liveupdateNumber + 1,
      detail: `liveupdate number ${number === null ? "unknown" : number - 1} taken over, ` +
        `${expected.liveupdateNumber ?? "unknown"} recorded`,
    });
    checks.push({
      what: "luo-format",
      ok: expected.target.luo === null ? null : outgoing.luo.compatible === expected.target.luo,
      detail: `this kernel speaks ${outgoing.luo.compatible}, the target was recorded as ` +
        `${expected.target.luo ?? "unknown"}`,
    });
  } else {
    checks.push({
      what: "luo-taken-over",
      ok: null,
      detail: isKhoTree(outgoing) ? "no outgoing LUO header" : outgoing.reason,
    });
  }
  return { ok: checks.every((check) => check.ok !== false), checks };
}

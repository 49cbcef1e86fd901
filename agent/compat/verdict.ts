/**
 * The compatibility verdict, by the kernel's own rule: the new kernel panics at
 * boot unless the previous kernel's LUO ABI version has the same major and a
 * minor not greater than its own — so a target is compatible only if its major
 * equals the running kernel's and its minor is ≥ the running kernel's.
 *
 * @module
 */

import type { LuoVersion } from "../kernel/mod.ts";
import { formatLuoVersion } from "./version.ts";

/** What the agent knows about one kernel's LUO ABI version. */
export type VersionKnowledge =
  /** Known, and from where ("compat.running_version", a metadata file). */
  | { version: LuoVersion; from: string }
  /** Not known, and why (no metadata, no target configured, …). */
  | { unknown: string }
  /** Claimed but malformed (metadata or setting that cannot be parsed), and how. */
  | { invalid: string };

/** The outcome of the check. */
export type VerdictOutcome = "compatible" | "incompatible" | "unknown" | "invalid";

/** The verdict on a running/target pair. */
export interface Verdict {
  outcome: VerdictOutcome;
  /** Whether an update may go ahead. */
  allowed: boolean;
  /** Allowed only because of `compat.allow_unknown` (to be recorded with the attempt). */
  override: boolean;
  /** One sentence saying why, for logs, records and `status`. */
  sentence: string;
}

const PANIC = 'so the new kernel would panic at boot ("Orchestrator version mismatch")';

/** The verdict on `running` → `target`; `allowUnknown` is `compat.allow_unknown`. */
export function decideCompatibility(
  running: VersionKnowledge,
  target: VersionKnowledge,
  allowUnknown: boolean,
): Verdict {
  const sides = [["running", running], ["target", target]] as const;
  const invalid = sides.filter(([, side]) => "invalid" in side);
  if (invalid.length > 0) {
    const what = invalid.map(([role, side]) =>
      `the ${role} kernel's ${(side as { invalid: string }).invalid}`
    )
      .join(", and ");
    return {
      outcome: "invalid",
      allowed: false,
      override: false,
      sentence: `Refused: ${what}; fix it or set ${
        invalid.map(([role]) => `compat.${role}_version`).join(" and ")
      }.`,
    };
  }
  const unknown = sides.filter(([, side]) => "unknown" in side);
  const why = (side: VersionKnowledge) => (side as { unknown: string }).unknown.replace(/\.$/, "");
  if (unknown.length > 0) {
    const what = unknown.length === 2
      ? `the LUO ABI versions of both kernels are unknown (running: ${why(running)}; target: ${
        why(target)
      })`
      : `the ${unknown[0]![0]} kernel's LUO ABI version is unknown (${why(unknown[0]![1])})`;
    if (allowUnknown) {
      return {
        outcome: "unknown",
        allowed: true,
        override: true,
        sentence: `Allowed only by compat.allow_unknown: ${what}, so the kernel's version ` +
          "rule was not checked.",
      };
    }
    return {
      outcome: "unknown",
      allowed: false,
      override: false,
      sentence: `Refused: ${what}; ship the kernel's liveupdate-abi metadata, set ${
        unknown.map(([role]) => `compat.${role}_version`).join(" and ")
      }, or set compat.allow_unknown = true to update without the check.`,
    };
  }
  const r = (running as { version: LuoVersion }).version;
  const t = (target as { version: LuoVersion }).version;
  const rs = formatLuoVersion(r);
  const ts = formatLuoVersion(t);
  if (t.major !== r.major) {
    return {
      outcome: "incompatible",
      allowed: false,
      override: false,
      sentence: `Refused: the target kernel's LUO ABI ${ts} has another major version than the ` +
        `running kernel's ${rs}, ${PANIC}.`,
    };
  }
  if (t.minor < r.minor) {
    return {
      outcome: "incompatible",
      allowed: false,
      override: false,
      sentence: `Refused: the target kernel's LUO ABI ${ts} is older than the running kernel's ` +
        `${rs} (minor ${t.minor} < ${r.minor}), ${PANIC}.`,
    };
  }
  return {
    outcome: "compatible",
    allowed: true,
    override: false,
    sentence: `Compatible: the target kernel's LUO ABI ${ts} can take over from the running ` +
      `kernel's ${rs} (same major version, minor ${t.minor} ≥ ${r.minor}).`,
  };
}

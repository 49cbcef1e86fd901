/**
 * How attempt records read for an operator: one-line summaries (the history in
 * `status` and `history`), a short description of each journaled step's result,
 * and the whole record as aligned `Key: value` lines with its steps.
 *
 * @module
 */

import type { AttemptRecord, AttemptStatus, StepEntry } from "../store/mod.ts";
import { TERMINAL_STATUSES } from "../store/mod.ts";

/** One attempt in a history (`status --json`'s `attempts.recent`, `history --json`). */
export interface AttemptSummary {
  id: string;
  status: AttemptStatus;
  /** Whether nothing more happens to it (a terminal status). */
  ended: boolean;
  started: string;
  /** When it ended (its outcome), or null. */
  ended_at: string | null;
  running_release: string | null;
  target_release: string | null;
  /** From start to end (or to the last write while open), in ms. */
  duration_ms: number | null;
  /** The exit code of its outcome, or null while open. */
  exit_code: number | null;
  /** The outcome's message, or null while open. */
  message: string | null;
  /** The first step that failed, if any. */
  failed_step: string | null;
}

function ms(from: string | undefined, to: string | undefined): number | null {
  if (!from || !to) return null;
  const a = Date.parse(from);
  const b = Date.parse(to);
  return Number.isNaN(a) || Number.isNaN(b) || b < a ? null : b - a;
}

/** The summary of one record. */
export function summarizeAttempt(record: AttemptRecord): AttemptSummary {
  return {
    id: record.id,
    status: record.status,
    ended: TERMINAL_STATUSES.has(record.status),
    started: record.created,
    ended_at: record.outcome?.at ?? null,
    running_release: record.kernels.running.release,
    target_release: record.kernels.target.release,
    duration_ms: ms(record.created, record.outcome?.at ?? record.updated),
    exit_code: record.outcome?.exit_code ?? null,
    message: record.outcome?.message ?? null,
    failed_step: (record.notes.failure as { step?: string } | undefined)?.step ??
      record.steps.find((step) => step.status === "failed")?.name ?? null,
  };
}

/** Seconds with a precision that suits the size ("0.04s", "1.2s", "12s", "3min 2s"). */
export function seconds(value: number): string {
  const s = value / 1000;
  if (s < 1) return `${s.toFixed(2)}s`;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 120) return `${Math.round(s)}s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 120) return `${minutes}min ${Math.round(s - minutes * 60)}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}min`;
}

/** An ISO time as "2026-11-25 20:00:00Z" (UTC, no milliseconds). */
export function shortTime(iso: string | null | undefined): string {
  if (!iso) return "-";
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return iso;
  return new Date(time).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** How long ago `iso` was, relative to `now` ("5s ago", "3min ago", "2h ago", "4 days ago"). */
export function ago(iso: string | null | undefined, now: Date): string {
  if (!iso) return "";
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return "";
  const s = Math.max(0, Math.round((now.getTime() - time) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}min ago`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)} days ago`;
}

function list(units: unknown): string {
  return Array.isArray(units) && units.length > 0 ? units.join(", ") : "";
}

/** A short description of a journaled step's result. */
export function describeStep(name: string, result: unknown): string {
  const r = (result ?? {}) as Record<string, unknown>;
  if (name === "request-devices") {
    const parts = [`${r.requested ?? 0} device(s) requested`];
    if (r.alreadyRequested) parts.push(`${r.alreadyRequested} already`);
    if (r.cleared) parts.push(`${r.cleared} cleared`);
    return parts.join(", ");
  }
  if (name === "load-kernel" && typeof r.loaded === "string") {
    return `${r.loaded.slice(r.loaded.lastIndexOf("/") + 1)} loaded (kexec -s -l)`;
  }
  if (name.startsWith("phase-")) {
    const changes = (r.changes ?? {}) as Record<string, unknown>;
    const parts = [];
    if (list(changes.stopped)) parts.push(`stopped ${list(changes.stopped)}`);
    if (list(changes.started)) parts.push(`started ${list(changes.started)}`);
    return parts.join("; ") || "no unit changed";
  }
  if (name === "prepare-kernel") return "kernel state prepared";
  if (name === "verify") {
    const problems = Array.isArray(r.problems) ? r.problems.length : 0;
    return problems ? `${problems} problem(s)` : `booted ${r.booted ?? "?"} as recorded`;
  }
  if (name === "reclaim-devices") {
    return `${r.reclaimed ?? 0} of ${r.preserved ?? 0} preserved device(s) reclaimed`;
  }
  if (name === "finish-kernel") return `kernel state ${r.state ?? "?"}`;
  if (name === "forget-devices") return "no device requested in the new kernel";
  return "";
}

const STEP_MARK: Record<StepEntry["status"], string> = {
  started: "…",
  done: "✓",
  failed: "✗",
  undoing: "↺",
  undone: "↺",
  "undo-failed": "✗",
};

/** A status's bullet, as systemctl shows its units: ● fine or running, × failed, ○ nothing. */
export function bulletOf(status: AttemptStatus | "none"): string {
  if (status === "failed") return "×";
  if (status === "none") return "○";
  return "●";
}

/** Aligned `Key: value` lines (keys right-aligned to `width`), continuation lines indented. */
export function keyValues(rows: readonly (readonly [string, string])[], width = 11): string[] {
  const lines: string[] = [];
  for (const [key, value] of rows) {
    const [first = "", ...rest] = value.split("\n");
    lines.push(`${key.padStart(width)}: ${first}`);
    for (const more of rest) lines.push(`${" ".repeat(width + 2)}${more}`);
  }
  return lines;
}

/** The whole record as text (`history ID`). `file` is where it is stored. */
export function renderAttempt(record: AttemptRecord, file: string): string {
  const summary = summarizeAttempt(record);
  const { running, target } = record.kernels;
  const version = (v: string | null) => (v ? `LUO ABI ${v}` : "LUO ABI unknown");
  const timings = Object.entries(record.timings)
    .filter(([, value]) => typeof value === "number")
    .map(([key, value]) => `${key.replace(/_ms$/, "")} ${seconds(value as number)}`);
  const devices = (record.notes.devices ?? {}) as Record<string, unknown>;
  const plan = record.plan as { devices?: { selected?: unknown[]; ancestors?: unknown[] } };
  const deviceText = typeof devices.preserved === "number"
    ? `${devices.selected ?? "?"} selected, ${devices.preserved} preserved, ` +
      `${devices.reclaimed ?? 0} reclaimed, ${devices.unreclaimed ?? 0} not reclaimed`
    : `${plan.devices?.selected?.length ?? 0} selected, ` +
      `${plan.devices?.ancestors?.length ?? 0} ancestor(s) preserved with them`;
  const rows: [string, string][] = [
    [
      "Status",
      summary.ended
        ? `${record.status} (exit ${summary.exit_code ?? "?"})`
        : `${record.status} (not ended)`,
    ],
  ];
  if (record.outcome) rows.push(["Outcome", record.outcome.message]);
  rows.push(
    ["Started", shortTime(record.created)],
    [
      "Ended",
      summary.ended_at
        ? `${shortTime(summary.ended_at)}` +
          (summary.duration_ms !== null ? ` (after ${seconds(summary.duration_ms)})` : "")
        : `-, last written ${shortTime(record.updated)}`,
    ],
    [
      "Kernels",
      `${running.release ?? "?"} (${version(running.luo_version)}) → ` +
      `${target.release ?? "?"} (${version(target.luo_version)})`,
    ],
  );
  if (target.image) {
    rows.push(["Image", target.image + (target.initrd ? ` + ${target.initrd}` : "")]);
  }
  if (target.cmdline !== undefined) rows.push(["Cmdline", target.cmdline || "(empty)"]);
  rows.push(
    [
      "Compat",
      `${record.compat.verdict}${record.compat.override ? " (overridden)" : ""}` +
      (record.compat.reason ? ` — ${record.compat.reason}` : ""),
    ],
    ["Backend", record.backend],
    ["Devices", deviceText],
  );
  if (record.overrides.length) rows.push(["Overrides", record.overrides.join("\n")]);
  if (timings.length) rows.push(["Timings", timings.join(", ")]);
  rows.push(["Agent", record.agent_version], ["File", file]);
  const lines = [
    `${bulletOf(record.status)} attempt ${record.id} — ${record.status}`,
    ...keyValues(rows),
    "",
    "Steps:",
  ];
  if (record.steps.length === 0) lines.push("  none");
  for (const step of record.steps) {
    const took = ms(step.started, step.ended);
    const detail = step.status === "done"
      ? describeStep(step.name, step.result)
      : step.error ?? step.status;
    lines.push(
      `  ${STEP_MARK[step.status]} ${step.name.padEnd(16)} ${step.status.padEnd(11)} ` +
        `${took === null ? "" : seconds(took).padStart(6)}  ${detail}`.trimEnd(),
    );
  }
  const notes = Object.entries(record.notes).filter(([key]) => key !== "devices");
  if (notes.length) {
    lines.push("", "Notes:");
    for (const [key, value] of notes) lines.push(`  ${key}: ${JSON.stringify(value)}`);
  }
  return lines.join("\n") + "\n";
}

/** One line of a history table, for `status` and `history`. */
export function historyLine(summary: AttemptSummary): string {
  const kernels = `${summary.running_release ?? "?"} → ${summary.target_release ?? "?"}`;
  const took = summary.duration_ms === null ? "" : seconds(summary.duration_ms);
  const why = summary.ended && summary.status !== "succeeded" && summary.message
    ? `  ${summary.message.length > 90 ? `${summary.message.slice(0, 89)}…` : summary.message}`
    : "";
  return `${shortTime(summary.started)}  ${summary.status.padEnd(12)} ${kernels}  ${
    took.padStart(6)
  }` +
    `  ${summary.id}${why}`;
}

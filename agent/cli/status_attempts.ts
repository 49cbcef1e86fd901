/**
 * The history part of `liveupdate-agent status`: the open attempt, the last ones and
 * how they ended, and record files that cannot be used — read from the state
 * directory, changing nothing.
 *
 * @module
 */

import type { Config } from "../config/mod.ts";
import { describeError } from "../errors.ts";
import type { FileSystem } from "../host/mod.ts";
import { AttemptStore, TERMINAL_STATUSES } from "../store/mod.ts";

/** How many attempts `status` lists. */
export const STATUS_ATTEMPTS = 5;

/** One attempt as `status` shows it. */
export interface StatusAttempt {
  id: string;
  status: string;
  created: string;
  updated: string;
  /** The target kernel's release, if known. */
  target: string | null;
  /** How it ended (null while open). */
  result: string | null;
  message: string | null;
  /** The step that failed (`notes.failure.step`), if any. */
  failedStep: string | null;
}

/** The `attempts` part of `status --json`. */
export interface StatusAttempts {
  /** The state directory's attempts folder. */
  dir: string;
  /** The id of the attempt still open, if any (see `recover`). */
  open: string | null;
  /** The newest attempts, newest first. */
  recent: StatusAttempt[];
  /** Record files that cannot be used (`recover` sets them aside). */
  unreadable: { path: string; problem: string }[];
  /** Why the records could not be listed at all. */
  problem: string | null;
}

/** Reads the attempt history. Needs read permission on `paths.state_dir`. */
export async function statusAttempts(fs: FileSystem, config: Config): Promise<StatusAttempts> {
  const store = new AttemptStore(fs, config.paths.state_dir, config.store.history);
  const section: StatusAttempts = {
    dir: store.dir,
    open: null,
    recent: [],
    unreadable: [],
    problem: null,
  };
  try {
    const { records, unreadable } = await store.list();
    const newest = records.find((record) => record.status !== "refused");
    if (newest && !TERMINAL_STATUSES.has(newest.status)) section.open = newest.id;
    section.recent = records.slice(0, STATUS_ATTEMPTS).map((record) => ({
      id: record.id,
      status: record.status,
      created: record.created,
      updated: record.updated,
      target: record.kernels.target.release ?? null,
      result: record.outcome?.result ?? null,
      message: record.outcome?.message ?? null,
      failedStep: (record.notes.failure as { step?: string } | undefined)?.step ?? null,
    }));
    section.unreadable = unreadable.map(({ path, problem }) => ({ path, problem }));
  } catch (error) {
    section.problem = describeError(error);
  }
  return section;
}

/** The text lines of the section (label, then continuation lines). */
export function attemptsText(section: StatusAttempts): { label: string; lines: string[] } {
  if (section.problem) return { label: `unreadable — ${section.problem}`, lines: [] };
  const label = section.open
    ? `${section.open} is open — 'liveupdate-agent recover' ends it`
    : section.recent.length
    ? `none open; the last ${section.recent.length}:`
    : "none yet";
  const lines = section.recent.map((attempt) =>
    `${attempt.id} ${attempt.status}` +
    (attempt.target ? ` → ${attempt.target}` : "") +
    (attempt.failedStep ? ` (step ${attempt.failedStep})` : "")
  );
  for (const bad of section.unreadable) {
    lines.push(`damaged: ${bad.path} (${bad.problem}); 'liveupdate-agent recover' sets it aside`);
  }
  return { label, lines };
}

/**
 * The broker's record of the sessions it handed over, kept in the state
 * directory across the kexec (`<state_dir>/sessions.json`): written when
 * preparation succeeded, read by the broker of the next boot to know which
 * sessions to retrieve (the kernel cannot list them), and updated with what
 * became of each. Written atomically (temp file, fsync, rename, fsync of the
 * folder), so a crash leaves the old record or the new one, never a torn one.
 *
 * @module
 */

import { AgentError } from "../errors.ts";

/** Version of the record format. */
export const RECORD_VERSION = 1;

/** What became of a session after the kexec. */
export type SessionOutcome =
  /** Retrieved by the agent, waiting for its client's CLAIM. */
  | "waiting"
  /** Handed to a client that has not finished it yet. */
  | "claimed"
  /** The client finished it. */
  | "finished"
  /** Nobody claimed it in time: the agent finished it and its files were dropped. */
  | "finished-unclaimed"
  /** The new kernel did not have it (ENOENT) or could not give it back. */
  | "lost";

/** One session in the record. */
export interface RecordedSession {
  name: string;
  /** The client that preserved it (pid and uid at preparation). */
  client: { pid: number; uid: number };
  outcome?: SessionOutcome;
  /** Why it was lost, or finished unclaimed. */
  detail?: string;
  /** When its outcome was settled (ISO time). */
  settledAt?: string;
}

/** The record. */
export interface SessionRecord {
  version: number;
  /**
   * "prepared": sessions held for the kexec. "restoring": retrieved in the new
   * boot, claims pending. "done": every session settled.
   */
  phase: "prepared" | "restoring" | "done";
  /** The boot in which the sessions were prepared (/proc/sys/kernel/random/boot_id). */
  preparedBootId: string;
  preparedAt: string;
  /** The boot that retrieved them, once one did. */
  restoredBootId?: string;
  restoredAt?: string;
  /** The kernel's outgoing liveupdate number at preparation (null when debugfs was unreadable). */
  liveupdateNumber: number | null;
  sessions: RecordedSession[];
}

/** The record file could not be read or written. */
export class SessionRecordError extends AgentError {
  override name = "SessionRecordError";
}

/** The record's path in `stateDir`. */
export function recordPath(stateDir: string): string {
  return `${stateDir}/sessions.json`;
}

/** Reads the record; null when there is none. Throws SessionRecordError when unusable. */
export async function readRecord(stateDir: string): Promise<SessionRecord | null> {
  const path = recordPath(stateDir);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new SessionRecordError(`Cannot read the session record ${path}: ${error}`, {
      cause: error,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SessionRecordError(
      `The session record ${path} is not valid JSON; move it aside to start afresh (its ` +
        "sessions cannot be claimed then).",
      { cause: error },
    );
  }
  const record = value as Partial<SessionRecord>;
  if (
    typeof record !== "object" || record === null || record.version !== RECORD_VERSION ||
    !Array.isArray(record.sessions) || typeof record.preparedBootId !== "string" ||
    !["prepared", "restoring", "done"].includes(record.phase as string) ||
    record.sessions.some((session) => typeof session?.name !== "string")
  ) {
    throw new SessionRecordError(
      `The session record ${path} is not a version ${RECORD_VERSION} record; move it aside to ` +
        "start afresh (its sessions cannot be claimed then).",
    );
  }
  return record as SessionRecord;
}

let writes = 0;

/** Writes the record atomically. Throws SessionRecordError. */
export async function writeRecord(stateDir: string, record: SessionRecord): Promise<void> {
  const path = recordPath(stateDir);
  const temporary = `${path}.tmp-${Deno.pid}-${++writes}`;
  try {
    await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
    const file = await Deno.open(temporary, {
      write: true,
      create: true,
      truncate: true,
      mode: 0o600,
    });
    try {
      await file.write(new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n"));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
    const dir = await Deno.open(stateDir, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch (error) {
    await Deno.remove(temporary).catch(() => undefined);
    throw new SessionRecordError(
      `Cannot write the session record ${path}: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
}

/** Removes the record (after an abort). */
export async function removeRecord(stateDir: string): Promise<void> {
  await Deno.remove(recordPath(stateDir)).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

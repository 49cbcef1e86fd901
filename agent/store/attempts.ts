/**
 * The history of attempts under `<state_dir>/attempts/`: one JSON file per attempt,
 * written atomically, the newest kept (`store.history`), corrupted files reported
 * clearly and set aside rather than crashing the agent.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import { type AttemptRecord, checkAttempt, TERMINAL_STATUSES } from "./attempt.ts";
import { writeFileAtomic } from "./atomic.ts";
import { ensurePrivateDir, readRecordFile } from "./private_dir.ts";
import { fileErrorReason, StoreError } from "./store_error.ts";

/** The largest record the agent reads (a record of 10,000 devices is well below). */
const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** A record file that could not be used, and why. */
export interface UnreadableRecord {
  path: string;
  problem: string;
}

/** Reads and writes attempt records. */
export class AttemptStore {
  readonly dir: string;

  readonly stateDir: string;

  constructor(private readonly fs: FileSystem, stateDir: string, private readonly keep = 50) {
    this.stateDir = stateDir;
    this.dir = `${stateDir}/attempts`;
  }

  /** The file of attempt `id`. */
  pathOf(id: string): string {
    return `${this.dir}/${id}.json`;
  }

  /**
   * Creates the state directories (0700), refusing a symlink at either (the agent's
   * writes and its chmod must not land elsewhere). Needs write permission on the
   * state directory.
   */
  async ensure(): Promise<void> {
    await ensurePrivateDir(this.fs, this.stateDir, "state directory (paths.state_dir)");
    await ensurePrivateDir(this.fs, this.dir, "directory of attempt records");
  }

  /** Writes `record` (atomically, mode 0600), stamping `updated`. */
  async save(record: AttemptRecord, now: Date): Promise<void> {
    record.updated = now.toISOString();
    await writeFileAtomic(this.fs, this.pathOf(record.id), JSON.stringify(record, null, 2) + "\n");
  }

  /** Reads attempt `id`. Throws StoreError naming the file when it is missing or corrupt. */
  async load(id: string): Promise<AttemptRecord> {
    const result = await this.read(this.pathOf(id));
    if ("problem" in result) {
      throw new StoreError(
        `Attempt record "${result.path}" cannot be used: ${result.problem}. ` +
          "Run 'liveupdate-agent recover' to set it aside and bring the host to a known state.",
        result.path,
      );
    }
    return result;
  }

  private async read(path: string): Promise<AttemptRecord | UnreadableRecord> {
    const read = await readRecordFile(this.fs, path, MAX_RECORD_BYTES);
    if ("missing" in read) return { path, problem: "it does not exist" };
    if ("problem" in read) return { path, problem: read.problem };
    const text = read.text;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { path, problem: "it is not valid JSON (truncated or damaged)" };
    }
    const checked = checkAttempt(parsed);
    if (!checked.ok) return { path, problem: checked.problem };
    if (`${checked.record.id}.json` !== path.slice(path.lastIndexOf("/") + 1)) {
      return { path, problem: `its id "${checked.record.id}" does not match its file name` };
    }
    return checked.record;
  }

  /**
   * Every record, newest first, and the files that could not be used. Reading the
   * history never fails on one bad file.
   */
  async list(): Promise<{ records: AttemptRecord[]; unreadable: UnreadableRecord[] }> {
    const names: string[] = [];
    await this.refuseLinks();
    try {
      for await (const entry of this.fs.readDir(this.dir)) {
        if (entry.isFile && entry.name.endsWith(".json") && !entry.name.startsWith(".")) {
          names.push(entry.name);
        }
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return { records: [], unreadable: [] };
      throw new StoreError(
        `Cannot list the attempt records in "${this.dir}": ${fileErrorReason(error)}.`,
        this.dir,
        { cause: error },
      );
    }
    names.sort().reverse();
    const records: AttemptRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (const name of names) {
      const result = await this.read(`${this.dir}/${name}`);
      if ("problem" in result) unreadable.push(result);
      else records.push(result);
    }
    return { records, unreadable };
  }

  /** Throws StoreError when the state or records directory is a symlink (or not a directory). */
  private async refuseLinks(): Promise<void> {
    for (
      const [dir, what] of [[this.stateDir, "state directory"], [this.dir, "records directory"]]
    ) {
      let info: Deno.FileInfo;
      try {
        info = await this.fs.lstat(dir!);
      } catch {
        continue; // Missing (no records yet) or unreadable: listing says which.
      }
      if (info.isSymlink || !info.isDirectory) {
        throw new StoreError(
          `The ${what} "${dir}" is ${info.isSymlink ? "a symlink" : "not a directory"}; the ` +
            "agent keeps its records only in a real directory. Replace it with a directory.",
          dir!,
        );
      }
    }
  }

  /**
   * The newest attempt, if it has not ended. Refused attempts are passed over: they
   * changed nothing, and one refused while another attempt is open must not hide it.
   */
  async open(): Promise<AttemptRecord | undefined> {
    const { records } = await this.list();
    const newest = records.find((record) => record.status !== "refused");
    return newest && !TERMINAL_STATUSES.has(newest.status) ? newest : undefined;
  }

  /**
   * Moves a record that cannot be used aside (`<name>.corrupt`), so the agent can
   * go on; returns the new path. The content is kept for the operator.
   */
  async setAside(path: string): Promise<string> {
    const target = `${path}.corrupt`;
    try {
      await this.fs.rename(path, target);
      return target;
    } catch (error) {
      throw new StoreError(
        `Cannot move the unusable record "${path}" aside: ${fileErrorReason(error)}. ` +
          "Move or remove it by hand.",
        path,
        { cause: error },
      );
    }
  }

  /** Removes the oldest ended records beyond the configured history length. */
  async prune(): Promise<string[]> {
    const { records } = await this.list();
    const removed: string[] = [];
    for (const record of records.slice(this.keep)) {
      if (!TERMINAL_STATUSES.has(record.status)) continue;
      const path = this.pathOf(record.id);
      await this.fs.remove(path).catch(() => {});
      removed.push(path);
    }
    return removed;
  }
}

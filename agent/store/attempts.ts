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
import { fileErrorReason, StoreError } from "./store_error.ts";

/** A record file that could not be used, and why. */
export interface UnreadableRecord {
  path: string;
  problem: string;
}

/** Reads and writes attempt records. */
export class AttemptStore {
  readonly dir: string;

  constructor(private readonly fs: FileSystem, stateDir: string, private readonly keep = 50) {
    this.dir = `${stateDir}/attempts`;
  }

  /** The file of attempt `id`. */
  pathOf(id: string): string {
    return `${this.dir}/${id}.json`;
  }

  /** Creates the state directories (0700). Needs write permission on the state directory. */
  async ensure(): Promise<void> {
    try {
      await this.fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await this.fs.chmod(this.dir, 0o700);
      await this.fs.chmod(this.dir.slice(0, this.dir.lastIndexOf("/")), 0o700);
    } catch (error) {
      throw new StoreError(
        `Cannot create the state directory "${this.dir}": ${fileErrorReason(error)}. ` +
          "Check paths.state_dir and its permissions.",
        this.dir,
        { cause: error },
      );
    }
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
    let text: string;
    try {
      text = await this.fs.readTextFile(path);
    } catch (error) {
      return { path, problem: `it cannot be read (${fileErrorReason(error)})` };
    }
    if (text.length > 16 * 1024 * 1024) return { path, problem: "it is larger than 16 MiB" };
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

/**
 * What the selection worked out for each tagged device, remembered between runs
 * with the identity of the udev data file it came from (file_identity.ts). While a
 * device's data file keeps that identity, a selection takes the remembered outcome
 * (selected or passed over, the device path and unit) instead of reading and
 * parsing the file, following its sysfs link and checking the directories on the
 * way: one statx instead of five system calls and most of the selection's work.
 *
 * Only clean outcomes are remembered: errors and warnings (malformed data, a
 * missing data file, a link that cannot be followed) are worked out afresh on
 * every run, so every problem is still reported every time. A device that vanishes
 * while its data file stays (udev still removing it) is caught by the kernel read
 * that follows the selection (ENOENT: "vanished"), before anything is written.
 *
 * The cache is only ever an optimisation: a missing, unreadable, corrupt or
 * foreign cache (made for other paths, another tag or filter, or another format)
 * is ignored and rebuilt, and a cache that cannot be written is left alone.
 *
 * Kept in `<paths.runtime_dir>/devices-selection.cache`: /run, like the udev
 * database it describes, so neither outlives a reboot.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import type { DevicePath } from "../kernel/kernel.ts";
import { type FileIdentity, IDENTITY_LENGTH, isSettled, SETTLE_MS } from "./file_identity.ts";
import { isDevicePath } from "./sysfs_path.ts";

/** The cache's file name below the runtime directory. */
export const SELECTION_CACHE_FILE = "devices-selection.cache";
const FORMAT = 1;
/** A cache larger than this is not read (1,000,000 devices take about 150 MB). */
const MAX_CACHE_BYTES = 256 * 1024 * 1024;

/** What a selection worked out for one tagged device from one version of its data file. */
export interface CachedOutcome {
  /** The device below `<sysfs>/devices`. */
  path: DevicePath;
  /** `LIVEUPDATE_UNIT`, when the rules set one. */
  unit?: string;
  /** Why the device is passed over; absent when it is selected. */
  reason?: string;
}

/** What a cache was made for; a cache made for anything else is not used. */
export interface CacheKey {
  udevDb: string;
  sysfs: string;
  tag: string;
  match: Readonly<Record<string, string>>;
  /** The version of the selection's rules (selection.ts), bumped when outcomes would change. */
  rules: string;
}

/** When a run started, and how long before it a data file must have last changed to be remembered. */
export interface CacheClock {
  /** Milliseconds since the epoch, on the clock that stamps files (NaN: remember nothing). */
  startedMs: number;
  /** Default {@link SETTLE_MS}. */
  settleMs?: number;
}

/** One device: id, the 9 identity numbers, path, unit (or null), reason (or null). */
type Row = (string | number | null)[];
const PATH = 1 + IDENTITY_LENGTH;
const UNIT = PATH + 1;
const REASON = UNIT + 1;
const ROW_LENGTH = REASON + 1;

function keyText(key: CacheKey): string {
  const match = Object.fromEntries(Object.entries(key.match).sort(([a], [b]) => (a < b ? -1 : 1)));
  return JSON.stringify({ ...key, match });
}

function validRow(row: unknown): row is Row {
  if (!Array.isArray(row) || row.length !== ROW_LENGTH || typeof row[0] !== "string") {
    return false;
  }
  for (let i = 1; i <= IDENTITY_LENGTH; i++) {
    if (typeof row[i] !== "number" || !Number.isFinite(row[i])) return false;
  }
  return typeof row[PATH] === "string" && isDevicePath(row[PATH]) &&
    (row[UNIT] === null || typeof row[UNIT] === "string") &&
    (row[REASON] === null || typeof row[REASON] === "string");
}

/**
 * The outcomes of one selection run, with those remembered from earlier runs. A
 * selection asks {@link lookup} for each tagged device whose data file still has
 * the identity remembered, and tells {@link remember} what it worked out for the
 * others; afterwards {@link changed} says whether the cache is worth saving.
 */
export class SelectionCache {
  /** When the run started, in milliseconds since the epoch, on the clock that stamps files. */
  readonly startedMs: number;
  readonly #settleMs: number;
  /** Lookups answered from the cache in this run. */
  hits = 0;
  /** Outcomes worked out afresh in this run (and remembered when settled). */
  misses = 0;
  readonly #key: string;
  readonly #loaded: Map<string, Row>;
  readonly #next = new Map<string, Row>();
  #added = false;

  /** An empty cache for `key`, for a run started at `clock.startedMs`. */
  constructor(key: CacheKey, clock: CacheClock, loaded: Map<string, Row> = new Map()) {
    this.#key = keyText(key);
    this.startedMs = clock.startedMs;
    this.#settleMs = clock.settleMs ?? SETTLE_MS;
    this.#loaded = loaded;
  }

  /**
   * The cache in `text` (what {@link toText} wrote), or why it cannot be used: it is
   * not this format, was made for another key, or holds anything malformed.
   */
  static parse(
    text: string,
    key: CacheKey,
    clock: CacheClock,
  ): SelectionCache | { problem: string } {
    let document: { format?: unknown; key?: unknown; devices?: unknown };
    try {
      document = JSON.parse(text);
    } catch (error) {
      return { problem: `it is not JSON (${(error as Error).message})` };
    }
    if (typeof document !== "object" || document === null || document.format !== FORMAT) {
      return { problem: `it is not format ${FORMAT}` };
    }
    if (JSON.stringify(document.key) !== keyText(key)) {
      return { problem: "it was made for other paths, another tag or filter, or other rules" };
    }
    if (!Array.isArray(document.devices)) return { problem: 'it has no "devices" list' };
    const loaded = new Map<string, Row>();
    for (const row of document.devices) {
      if (!validRow(row)) return { problem: "an entry is malformed" };
      loaded.set(row[0] as string, row);
    }
    return new SelectionCache(key, clock, loaded);
  }

  /** Whether the cache remembers anything for `id` (worth looking at its data file). */
  has(id: string): boolean {
    return this.#loaded.has(id);
  }

  /**
   * The outcome remembered for `id`, if its data file still has `identity` (and the
   * version was settled when it was read); it is kept for the next run.
   */
  lookup(id: string, identity: FileIdentity): CachedOutcome | undefined {
    const row = this.#loaded.get(id);
    if (row === undefined) return undefined;
    for (let i = 0; i < IDENTITY_LENGTH; i++) if (row[i + 1] !== identity[i]) return undefined;
    this.#next.set(id, row);
    this.hits++;
    return {
      path: row[PATH] as string,
      unit: (row[UNIT] as string | null) ?? undefined,
      reason: (row[REASON] as string | null) ?? undefined,
    };
  }

  /**
   * Remembers what the selection worked out for `id` from the version of its data
   * file with `identity` (taken before it was read). A version that changed shortly
   * before the run is not remembered (see {@link isSettled}), nor one whose
   * identity is unknown (NaN).
   */
  remember(id: string, identity: FileIdentity, outcome: CachedOutcome): void {
    this.misses++;
    if (Number.isNaN(identity[0]) || !isSettled(identity, this.startedMs, this.#settleMs)) return;
    const row: Row = new Array(ROW_LENGTH);
    row[0] = id;
    for (let i = 0; i < IDENTITY_LENGTH; i++) row[i + 1] = identity[i]!;
    row[PATH] = outcome.path;
    row[UNIT] = outcome.unit ?? null;
    row[REASON] = outcome.reason ?? null;
    this.#next.set(id, row);
    this.#added = true;
  }

  /** Counts a device worked out afresh and not remembered (an error, a warning). */
  skip(): void {
    this.misses++;
  }

  /** Whether the cache for the next run differs from the one loaded. */
  get changed(): boolean {
    return this.#added || this.#next.size !== this.#loaded.size;
  }

  /** The cache for the next run: what this run looked up or remembered. */
  toText(): string {
    const rows = [...this.#next.values()].sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
    const lines = rows.map((row) => JSON.stringify(row));
    return `{"format":${FORMAT},"key":${this.#key},"devices":[\n${lines.join(",\n")}\n]}\n`;
  }
}

/** Where the cache is kept between runs. */
export interface SelectionCacheStore {
  /** The cache file. */
  readonly where: string;
  /**
   * The cache for `key` (an empty one when there is none or it is unusable; then
   * `problem` says why, for a debug log) and the time the run starts.
   */
  load(key: CacheKey): Promise<{ cache: SelectionCache; problem?: string }>;
  /** Saves `cache` if it changed, and cleans up; never throws (returns the failure). */
  save(cache: SelectionCache): Promise<Error | undefined>;
}

/**
 * The cache in `<dir>/devices-selection.cache`, through the host's file system.
 * The run's start time comes from the file system itself: `load` creates the file
 * the cache will be written to and takes its modification time, on the very clock
 * that stamps the udev data files. Saving renames that file over the cache (no
 * fsync: it is a cache). Needs read and write access to `dir`.
 */
export function fileSelectionCacheStore(fs: FileSystem, dir: string): SelectionCacheStore {
  const file = `${dir}/${SELECTION_CACHE_FILE}`;
  const pending = new WeakMap<SelectionCache, string>();
  return {
    where: file,
    async load(key) {
      let startedMs: number;
      let temp: string | undefined;
      try {
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
        temp = `${file}.tmp-${crypto.randomUUID()}`;
        using handle = await fs.open(temp, { write: true, createNew: true, mode: 0o600 });
        startedMs = (await handle.stat()).mtime?.getTime() ?? NaN;
      } catch (error) {
        if (temp !== undefined) await fs.remove(temp).catch(() => {});
        // No place to keep a cache: nothing is remembered (NaN is never settled).
        return {
          cache: new SelectionCache(key, { startedMs: NaN }),
          problem: `cannot write below "${dir}" (${(error as Error).message})`,
        };
      }
      let cache = new SelectionCache(key, { startedMs });
      let problem: string | undefined;
      try {
        const info = await fs.stat(file);
        if (info.size > MAX_CACHE_BYTES) {
          problem = `it is larger than ${MAX_CACHE_BYTES} bytes`;
        } else {
          const parsed = SelectionCache.parse(await fs.readTextFile(file), key, { startedMs });
          if ("problem" in parsed) problem = parsed.problem;
          else cache = parsed;
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) problem = (error as Error).message;
      }
      pending.set(cache, temp);
      return problem === undefined ? { cache } : { cache, problem };
    },
    async save(cache) {
      const temp = pending.get(cache);
      pending.delete(cache);
      if (temp === undefined) return undefined;
      try {
        if (cache.changed) {
          await fs.writeTextFile(temp, cache.toText());
          await fs.rename(temp, file);
          return undefined;
        }
      } catch (error) {
        await fs.remove(temp).catch(() => {});
        return error as Error;
      }
      await fs.remove(temp).catch(() => {});
      return undefined;
    },
  };
}

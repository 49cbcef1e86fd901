/**
 * What the selection worked out for each tagged device, remembered between runs
 * with the identity of the udev data file it came from (file_identity.ts). While a
 * device's data file keeps that identity, a selection takes the remembered outcome
 * (selected or passed over, the device path and unit) instead of reading and
 * parsing the file, following its sysfs link and checking the directories on the
 * way: one statx instead of five system calls and most of the selection's work.
 * When the tag index lists exactly what it listed then, and every data file is
 * unchanged, the whole selection is the one remembered.
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
import {
  type FileIdentity,
  IDENTITY_LENGTH,
  type IdentityFs,
  isSettled,
  SETTLE_MS,
} from "../host/mod.ts";
import type { PassedOver, SelectedAncestor, SelectedDevice, Selection } from "./selection.ts";
import { isDevicePath } from "./sysfs_path.ts";

/** The cache's file name below the runtime directory. */
export const SELECTION_CACHE_FILE = "devices-selection.cache";
const FORMAT = 2;
/** A cache larger than this is not read (1,000,000 devices take about 300 MB). */
const MAX_CACHE_BYTES = 512 * 1024 * 1024;

/** What a selection worked out for one tagged device from one version of its data file. */
export interface CachedOutcome {
  /** The device below `<sysfs>/devices`. */
  path: DevicePath;
  /** `LIVEUPDATE_UNIT`, when the rules set one (else undefined). */
  unit?: string;
  /** Why the device is passed over; undefined when it is selected. */
  reason?: string;
}

/** What a cache was made for; a cache made for anything else is not used. */
export interface CacheKey {
  udevDb: string;
  sysfs: string;
  tag: string;
  match: Readonly<Record<string, string>>;
  /** The version of the selection's rules (selection.ts), changed when outcomes would change. */
  rules: string;
}

/** When a run started, and how long before it a data file must have last changed to be remembered. */
export interface CacheClock {
  /** Milliseconds since the epoch, on the clock that stamps files (NaN: remember nothing). */
  startedMs: number;
  /** Default {@link SETTLE_MS}. */
  settleMs?: number;
}

/** The devices of a selection, as the cache keeps them. */
type Parts = Pick<Selection, "devices" | "passedOver" | "ancestors">;

/** The cache file's document. */
interface Document {
  format: number;
  key: unknown;
  /** Tagged devices with a remembered outcome (their data file settled when read). */
  ids: string[];
  /** Their data files' identities, IDENTITY_LENGTH numbers each. */
  identities: number[];
  /** The selection they were worked out in (errors and warnings left out). */
  selection: Parts;
  /**
   * The tag index's listing key when that selection was complete: every listed
   * device remembered, no error, no warning. Else null.
   */
  listing: string | null;
}

function keyText(key: CacheKey): string {
  const match = Object.fromEntries(Object.entries(key.match).sort(([a], [b]) => (a < b ? -1 : 1)));
  return JSON.stringify({ ...key, match });
}

/** Whether `parts` has the selection's shape, with clean device paths. Cheap on purpose. */
function validParts(parts: unknown): parts is Parts {
  const { devices, passedOver, ancestors } = (parts ?? {}) as Record<string, unknown>;
  if (!Array.isArray(devices) || !Array.isArray(passedOver) || !Array.isArray(ancestors)) {
    return false;
  }
  for (let index = 0; index < devices.length; index++) {
    const device = devices[index] as SelectedDevice;
    if (
      typeof device !== "object" || device === null || typeof device.id !== "string" ||
      typeof device.path !== "string" || !isDevicePath(device.path) ||
      !(device.unit === undefined || typeof device.unit === "string") ||
      !Array.isArray(device.ancestors)
    ) return false;
    const above = device.ancestors;
    for (let at = 0; at < above.length; at++) if (typeof above[at] !== "string") return false;
  }
  for (let index = 0; index < passedOver.length; index++) {
    const over = passedOver[index] as PassedOver;
    if (
      typeof over !== "object" || over === null || typeof over.id !== "string" ||
      typeof over.reason !== "string" ||
      !(over.unit === undefined || typeof over.unit === "string") ||
      !(over.path === undefined || (typeof over.path === "string" && isDevicePath(over.path)))
    ) return false;
  }
  for (let index = 0; index < ancestors.length; index++) {
    const ancestor = ancestors[index] as SelectedAncestor;
    if (
      typeof ancestor !== "object" || ancestor === null || typeof ancestor.path !== "string" ||
      typeof ancestor.below !== "number"
    ) return false;
  }
  return true;
}

/** Whether every entry of `items` is a string (`numbers`: a number). */
function allOf(items: unknown[], type: "string" | "number"): boolean {
  for (let index = 0; index < items.length; index++) {
    // deno-lint-ignore valid-typeof -- `type` is one of the typeof names
    if (typeof items[index] !== type) return false;
  }
  return true;
}

/**
 * The outcomes of one selection run, with those remembered from earlier runs.
 * A selection first asks {@link unchanged} whether the whole remembered selection
 * still holds; otherwise it asks {@link lookup} for each tagged device whose data
 * file still has the identity remembered, tells {@link remember} about the others,
 * and hands the result to {@link finish}; {@link changed} then says whether the
 * cache is worth saving.
 */
export class SelectionCache {
  /** When the run started, in milliseconds since the epoch, on the clock that stamps files. */
  readonly startedMs: number;
  readonly #settleMs: number;
  /** Devices whose outcome came from the cache in this run. */
  hits = 0;
  /** Devices worked out afresh in this run. */
  misses = 0;
  readonly #key: string;
  readonly #loaded: Document | undefined;
  /** Position of each loaded id (built when first needed). */
  #index: Map<string, number> | undefined;
  /** Loaded outcomes by id (built when first needed). */
  #outcomes: Map<string, CachedOutcome> | undefined;
  readonly #nextIds: string[] = [];
  readonly #nextIdentities: number[] = [];
  #next: Document | undefined;

  /** An empty cache for `key`, for a run started at `clock.startedMs`. */
  constructor(key: CacheKey, clock: CacheClock, loaded?: Document) {
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
    let document: Document;
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
    const { ids, identities, listing } = document;
    if (
      !Array.isArray(ids) || !allOf(ids, "string") || !Array.isArray(identities) ||
      identities.length !== ids.length * IDENTITY_LENGTH || !allOf(identities, "number") ||
      !(listing === null || typeof listing === "string") || !validParts(document.selection)
    ) {
      return { problem: "its contents are malformed" };
    }
    return new SelectionCache(key, clock, document);
  }

  /**
   * The remembered selection's devices, if the tag index lists exactly what it
   * listed then (`listing`, its key) and every data file in `dataDir` is unchanged;
   * kept for the next run as it is.
   */
  unchanged(listing: string, identities: IdentityFs, dataDir: string): Parts | undefined {
    const loaded = this.#loaded;
    if (loaded?.listing !== listing) return undefined;
    if (!identities.sameIdentities(dataDir, loaded.ids, loaded.identities)) return undefined;
    this.hits = loaded.ids.length;
    this.#next = loaded;
    return loaded.selection;
  }

  /** Whether the cache remembers anything for `id` (worth looking at its data file). */
  has(id: string): boolean {
    return this.#indexOf(id) !== undefined;
  }

  #indexOf(id: string): number | undefined {
    if (this.#loaded === undefined) return undefined;
    if (this.#index === undefined) {
      this.#index = new Map();
      this.#loaded.ids.forEach((known, index) => this.#index!.set(known, index));
    }
    return this.#index.get(id);
  }

  /**
   * The outcome remembered for `id`, if its data file still has `identity`; it is
   * kept for the next run.
   */
  lookup(id: string, identity: FileIdentity): CachedOutcome | undefined {
    const index = this.#indexOf(id);
    if (index === undefined) return undefined;
    const known = this.#loaded!.identities;
    const at = index * IDENTITY_LENGTH;
    for (let i = 0; i < IDENTITY_LENGTH; i++) if (known[at + i] !== identity[i]) return undefined;
    const outcome = this.#outcomeOf(id);
    if (outcome === undefined) return undefined;
    this.#keep(id, identity);
    this.hits++;
    return outcome;
  }

  #outcomeOf(id: string): CachedOutcome | undefined {
    if (this.#outcomes === undefined) {
      const outcomes = new Map<string, CachedOutcome>();
      const { devices, passedOver } = this.#loaded!.selection;
      for (const { id, path, unit } of devices) outcomes.set(id, { path, unit, reason: undefined });
      for (const { id, path, unit, reason } of passedOver) {
        if (path !== undefined) outcomes.set(id, { path, unit, reason });
      }
      this.#outcomes = outcomes;
    }
    return this.#outcomes.get(id);
  }

  #keep(id: string, identity: ArrayLike<number>): void {
    this.#nextIds.push(id);
    for (let i = 0; i < IDENTITY_LENGTH; i++) this.#nextIdentities.push(identity[i]!);
  }

  /**
   * Remembers that the outcome for `id` (in the selection {@link finish} gets) was
   * worked out from the version of its data file with `identity` (taken before it
   * was read). A version that changed shortly before the run is not remembered (see
   * {@link isSettled}), nor one whose identity is unknown (NaN).
   */
  remember(id: string, identity: FileIdentity): void {
    this.misses++;
    if (Number.isNaN(identity[0]) || !isSettled(identity, this.startedMs, this.#settleMs)) return;
    this.#keep(id, identity);
  }

  /** Counts a device worked out afresh and not remembered (an error, a warning). */
  skip(): void {
    this.misses++;
  }

  /**
   * Takes the run's `selection` (of the `listed` entries of the tag index whose
   * listing key is `listing`) for the next run.
   */
  finish(selection: Selection, listing: string, listed: number): void {
    const complete = selection.errors.length === 0 && selection.warnings.length === 0 &&
      this.#nextIds.length === listed;
    this.#next = {
      format: FORMAT,
      key: undefined,
      ids: this.#nextIds,
      identities: this.#nextIdentities,
      selection: {
        devices: selection.devices,
        passedOver: selection.passedOver,
        ancestors: selection.ancestors,
      },
      listing: complete ? listing : null,
    };
  }

  /** Whether the cache for the next run differs from the one loaded. */
  get changed(): boolean {
    return this.#next !== undefined && this.#next !== this.#loaded;
  }

  /** The cache for the next run. */
  toText(): string {
    return [...this.toChunks()].join("");
  }

  /** The cache for the next run as JSON text, in pieces of about `size` entries (written piecewise). */
  *toChunks(size = 1000): Generator<string> {
    const next = this.#next ?? {
      format: FORMAT,
      ids: [],
      identities: [],
      selection: { devices: [], passedOver: [], ancestors: [] },
      listing: null,
    };
    const { ids, identities, selection } = next;
    yield `{"format":${FORMAT},"key":${this.#key},"ids":`;
    yield* jsonArray(ids, size);
    yield ',"identities":';
    yield* jsonArray(identities, size * IDENTITY_LENGTH);
    yield ',"selection":{"devices":';
    yield* jsonArray(selection.devices, size);
    yield ',"passedOver":';
    yield* jsonArray(selection.passedOver, size);
    yield ',"ancestors":';
    yield* jsonArray(selection.ancestors, size);
    yield `},"listing":${JSON.stringify(next.listing)}}\n`;
  }
}

/** `items` as a JSON array, in pieces of `size` items. */
function* jsonArray(items: readonly unknown[], size: number): Generator<string> {
  if (items.length === 0) {
    yield "[]";
    return;
  }
  for (let start = 0; start < items.length; start += size) {
    const text = JSON.stringify(items.slice(start, start + size));
    // "[a,b]" pieces joined into one array: drop the inner brackets.
    yield (start === 0 ? "[" : ",") + text.slice(1, -1) +
      (start + size >= items.length ? "]" : "");
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
          {
            using handle = await fs.open(temp, { write: true, truncate: true });
            const encoder = new TextEncoder();
            for (const chunk of cache.toChunks()) {
              const bytes = encoder.encode(chunk);
              // Synchronously: on /run this is a copy into the page cache, and a
              // round trip to Deno's I/O threads per piece would cost more than the copy.
              for (let offset = 0; offset < bytes.length;) {
                offset += handle.writeSync(bytes.subarray(offset));
              }
            }
          }
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

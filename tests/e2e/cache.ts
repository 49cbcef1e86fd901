/**
 * The VM tier's cache, outside the repository: the Debian base root, the built
 * kernel module and the finished disk images, each keyed by a hash of what
 * determines its content, under one lock so two runs never build at once.
 *
 * Location: `$LIVEUPDATE_VM_CACHE`, default `/var/cache/liveupdate-agent/vm`.
 *
 * @module
 */

import { progress } from "./_log.ts";

/** The cache directory. Needs --allow-env. */
export function cacheRoot(): string {
  return Deno.env.get("LIVEUPDATE_VM_CACHE") ?? "/var/cache/liveupdate-agent/vm";
}

/** Hex SHA-256 of `parts`, joined unambiguously. */
export async function hashOf(...parts: (string | Uint8Array)[]): Promise<string> {
  const encoder = new TextEncoder();
  const chunks: Uint8Array[] = [];
  for (const part of parts) {
    const bytes = typeof part === "string" ? encoder.encode(part) : part;
    chunks.push(encoder.encode(`${bytes.length}:`), bytes);
  }
  const total = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    total.set(chunk, offset);
    offset += chunk.length;
  }
  const digest = await crypto.subtle.digest("SHA-256", total);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Hash of every file below `dir` (paths, modes and contents), skipping paths
 * `skip` returns true for. Needs --allow-read.
 */
export async function hashTree(
  dir: string,
  skip: (path: string) => boolean = () => false,
): Promise<string> {
  const entries: string[] = [];
  const parts: (string | Uint8Array)[] = [];
  const walk = async (rel: string) => {
    const names: string[] = [];
    for await (const entry of Deno.readDir(`${dir}/${rel}`)) names.push(entry.name);
    for (const name of names.sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (skip(path)) continue;
      const info = await Deno.lstat(`${dir}/${path}`);
      if (info.isDirectory) await walk(path);
      else if (info.isSymlink) entries.push(`${path} -> ${await Deno.readLink(`${dir}/${path}`)}`);
      else {
        entries.push(`${path} ${(info.mode ?? 0) & 0o777}`);
        parts.push(path, await Deno.readFile(`${dir}/${path}`));
      }
    }
  };
  await walk("");
  return await hashOf(entries.join("\n"), ...parts);
}

/**
 * Runs `fn` holding the cache's build lock (an exclusive flock on
 * `<cache>/.lock`), waiting for another run's build to end first.
 * Needs --allow-read and --allow-write on the cache.
 */
export async function withCacheLock<T>(fn: () => Promise<T>): Promise<T> {
  const root = cacheRoot();
  await Deno.mkdir(root, { recursive: true });
  using file = await Deno.open(`${root}/.lock`, { create: true, write: true });
  const waiting = setTimeout(() => progress(`waiting for the cache lock ${root}/.lock`), 1000);
  try {
    await file.lock(true);
  } finally {
    clearTimeout(waiting);
  }
  try {
    return await fn();
  } finally {
    await file.unlock();
  }
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Marks a cache entry as used now (pruning goes by this time). */
export async function touch(path: string): Promise<void> {
  const now = new Date();
  await Deno.utime(path, now, now);
}

/**
 * Removes cache entries named `<prefix><key>…` other than `keep`, when they were
 * last used ({@link touch}) more than `olderThanMs` ago (a run on another
 * branch may still use a recent one). Call with the lock held.
 */
export async function pruneCache(
  prefix: string,
  keep: string,
  olderThanMs: number,
): Promise<void> {
  const root = cacheRoot();
  for await (const entry of Deno.readDir(root)) {
    if (!entry.name.startsWith(prefix) || entry.name.startsWith(keep)) continue;
    const info = await Deno.lstat(`${root}/${entry.name}`);
    const age = Date.now() - (info.mtime?.getTime() ?? Date.now());
    if (age < olderThanMs) continue;
    progress(`pruning old cache entry ${entry.name}`);
    await Deno.remove(`${root}/${entry.name}`, { recursive: true });
  }
}

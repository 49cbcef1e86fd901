/**
 * The shape of one hostile-input case: what it plants in a fresh host, the
 * command line it runs, and what the agent must answer. The corpus is these
 * tables (`*_cases.ts`), one per kind of input.
 *
 * @module
 */

import type { HostileHost } from "./_host.ts";

/** The kinds of input the corpus covers. */
export type Category =
  | "config"
  | "sysfs"
  | "udev"
  | "records"
  | "fdt"
  | "cli"
  | "symlinks";

/** One malformed input and the answer it must get. */
export interface HostileCase {
  name: string;
  /** Plants the input in the fresh host. */
  setup?: (host: HostileHost) => Promise<void> | void;
  /** The command line (the host's `--config-root` is added unless `configRoot` is false). */
  argv: string[] | ((host: HostileHost) => string[]);
  configRoot?: boolean;
  /** The exit code it must end with. */
  code: number;
  /** What standard error must say (the clear error). */
  stderr?: RegExp;
  /** What standard output must say. */
  stdout?: RegExp;
  /** A failure whose reasons go to standard output (check's verdict): stderr may stay empty. */
  quiet?: boolean;
  /** Run it under strace and check every write of the agent (a sample per category). */
  strace?: boolean;
  /** Needs the shared private systemd manager (the host's bus points at it). */
  systemd?: boolean;
  /** Checks after the run (the host is still there). */
  after?: (host: HostileHost) => Promise<void> | void;
}

/** A category's table. */
export interface CaseTable {
  category: Category;
  cases: HostileCase[];
}

const encoder = new TextEncoder();

/** Writes `data` to `path` (creating parents). */
export async function plant(path: string, data: string | Uint8Array): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.remove(path, { recursive: true }).catch(() => {});
  await Deno.writeFile(path, typeof data === "string" ? encoder.encode(data) : data);
}

/** Replaces `path` with a FIFO. */
export async function plantFifo(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const made = await new Deno.Command("mkfifo", { args: [path] }).output();
  if (made.code !== 0) throw new Error(`mkfifo ${path} failed`);
}

/** Replaces `path` with a directory (holding one file, so it is not empty). */
export async function plantDir(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
  await Deno.mkdir(path, { recursive: true });
  await Deno.writeTextFile(`${path}/inner`, "x\n");
}

/** Replaces `path` with a symlink to `target`. */
export async function plantLink(path: string, target: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.symlink(target, path);
}

/** Deterministic pseudo-random bytes (the same corpus every run). */
export function garbage(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Exit codes (agent/exit_codes.ts), by name, for the tables. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  config: 3,
  unsupported: 4,
  refused: 5,
  rolledBack: 6,
  busy: 7,
  timeout: 8,
  notPermitted: 9,
} as const;

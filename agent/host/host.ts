/**
 * The small interfaces through which the agent reaches the host: files, processes,
 * the clock, the environment and its output streams. `agent/main.ts` creates the
 * real ones; tests pass fakes or point the real ones at simulated hosts.
 *
 * @module
 */

import type { BusConnector } from "../systemd/bus.ts";

/**
 * File-system access for ordinary files (configuration, records, kernel images,
 * metrics): the subset of the Deno namespace the agent uses. The kernel's files
 * (sysfs, procfs, debugfs, device nodes) go through `KernelFs` instead: Deno
 * refuses them without `--allow-all`.
 */
export type FileSystem = Pick<
  typeof Deno,
  | "readTextFile"
  | "readFile"
  | "writeTextFile"
  | "writeFile"
  | "readDir"
  | "stat"
  | "lstat"
  | "realPath"
  | "readLink"
  | "mkdir"
  | "remove"
  | "rename"
  | "open"
  | "chmod"
>;

/** What a finished process left behind. */
export interface ProcessResult {
  /** Exit code; 128 + N when killed by signal N. */
  code: number;
  /** The signal that ended the process, if any. */
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link ProcessRunner.run}. */
export interface RunOptions {
  /** Text written to the process's standard input. */
  stdin?: string;
  /** Aborting kills the process (SIGTERM). */
  signal?: AbortSignal;
}

/** Runs external programs, always with an argument array, never a shell string. */
export interface ProcessRunner {
  /** Runs `command` (an absolute path) with `args` and waits for it to end. */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<ProcessResult>;
}

/** Wall-clock and monotonic time. */
export interface Clock {
  /** The wall-clock time now. */
  now(): Date;
  /** Milliseconds from an arbitrary origin that never goes backwards. */
  monotonic(): number;
  /** Resolves after `ms` milliseconds; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Environment variables the agent reads. */
export interface Environment {
  get(name: string): string | undefined;
}

/** A text output stream (standard output or standard error). */
export interface Output {
  /** Writes all of `text`, synchronously so lines never interleave. */
  write(text: string): void;
  /** Whether the stream is a terminal. */
  isTerminal(): boolean;
}

/** Everything the agent touches on the host. */
export interface Host {
  fs: FileSystem;
  processes: ProcessRunner;
  clock: Clock;
  env: Environment;
  stdout: Output;
  stderr: Output;
  /** Opens D-Bus connections (to systemd's manager); created in `agent/main.ts`. */
  dbus: BusConnector;
}

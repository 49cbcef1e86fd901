/**
 * A host for tests: the real file system and processes, a settable environment,
 * a fixed clock, and captured output streams.
 *
 * @module
 */

import { type BusConnector, noBusConnector } from "../systemd/bus.ts";
import type { Clock, Environment, Host, Output } from "./host.ts";
import { realClock, realProcesses } from "./real_host.ts";

/** An output stream that keeps what was written. */
export interface CapturedOutput extends Output {
  /** Everything written so far. */
  text(): string;
}

/** Creates a captured output stream; `terminal` sets what `isTerminal()` answers. */
export function captureOutput(terminal = false): CapturedOutput {
  let buffer = "";
  return {
    write(text) {
      buffer += text;
    },
    isTerminal: () => terminal,
    text: () => buffer,
  };
}

/** A host for tests, with captured stdout and stderr. */
export interface TestHost extends Host {
  stdout: CapturedOutput;
  stderr: CapturedOutput;
}

/** Options of {@link createTestHost}. */
export interface TestHostOptions {
  env?: Record<string, string>;
  clock?: Clock;
  terminal?: boolean;
  /** The D-Bus connector; by default one that refuses to connect anywhere. */
  dbus?: BusConnector;
}

/** Creates a host whose environment is `options.env` and whose output is captured. */
export function createTestHost(options: TestHostOptions = {}): TestHost {
  const env: Environment = { get: (name) => options.env?.[name] };
  return {
    fs: Deno,
    processes: realProcesses,
    clock: options.clock ?? realClock,
    env,
    stdout: captureOutput(options.terminal),
    stderr: captureOutput(options.terminal),
    dbus: options.dbus ?? noBusConnector,
  };
}

/** A clock that stands still at `time` (sleep still waits for real). */
export function fixedClock(time: Date): Clock {
  return { ...realClock, now: () => new Date(time) };
}

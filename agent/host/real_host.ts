/**
 * The real host: Deno's file system, processes and clock.
 *
 * @module
 */

import { type BusConnector, noBusConnector } from "../systemd/bus.ts";
import type { Clock, Environment, Host, Output, ProcessResult, ProcessRunner } from "./host.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Runs programs with `Deno.Command`. Needs `--allow-run` for each program. */
export const realProcesses: ProcessRunner = {
  async run(command, args, options = {}): Promise<ProcessResult> {
    const child = new Deno.Command(command, {
      args: [...args],
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: options.signal,
    }).spawn();
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(encoder.encode(options.stdin));
      await writer.close();
    }
    const output = await child.output();
    return {
      code: output.code,
      signal: output.signal,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  },
};

/** The system clock. */
export const realClock: Clock = {
  now: () => new Date(),
  monotonic: () => performance.now(),
  sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
};

/** Reads environment variables. Needs `--allow-env` for each variable read. */
export const realEnvironment: Environment = {
  get(name) {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  },
};

function stream(target: typeof Deno.stdout | typeof Deno.stderr): Output {
  return {
    write(text) {
      const bytes = encoder.encode(text);
      let offset = 0;
      while (offset < bytes.length) offset += target.writeSync(bytes.subarray(offset));
    },
    isTerminal: () => target.isTerminal(),
  };
}

/** What `agent/main.ts` hands to {@link createRealHost}. */
export interface RealHostOptions {
  /** The D-Bus connector (dbus-next in production); none by default. */
  dbus?: BusConnector;
}

/** Creates the real host. Called once, from `agent/main.ts`. */
export function createRealHost(options: RealHostOptions = {}): Host {
  return {
    dbus: options.dbus ?? noBusConnector,
    fs: Deno,
    processes: realProcesses,
    clock: realClock,
    env: realEnvironment,
    stdout: stream(Deno.stdout),
    stderr: stream(Deno.stderr),
  };
}

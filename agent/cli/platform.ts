/**
 * Host capabilities beyond {@link Host} that `agent/main.ts` wires into the
 * commands: the libc FFI binding (loaded on first use) and the kernel's files
 * through it. Tests pass their own.
 *
 * @module
 */

import type { Config } from "../config/mod.ts";
import { AgentError } from "../errors.ts";
import { type KernelFs, type Libc, type ProcFacts, procFacts } from "../host/mod.ts";
import type { Identity } from "./control.ts";

/** What commands may need from the platform besides the Host. */
export interface Platform {
  /** The libc binding; opened on first call. Needs `--allow-ffi`. */
  libc: () => Libc;
  /**
   * The kernel's files — sysfs, procfs, debugfs, device nodes — and the udev
   * database: `libcKernelFs` in production (Deno's file API refuses /sys, /proc
   * and /dev under the agent's scoped permissions). Created on first call.
   */
  kernelFs: () => KernelFs;
  /** Who runs the agent (the control surface); by default this process, through libc. */
  identity?: Identity;
}

/**
 * The running kernel's procfs facts (command line, release, uptime, boot id, host
 * name) below `paths.proc`, read through the platform's kernel files.
 */
export function procFactsOf(platform: Platform, config: Config): ProcFacts {
  return procFacts(platform.kernelFs(), config.paths.proc);
}

function unwired(what: string): never {
  throw new AgentError(`This invocation has no ${what} (an internal wiring error).`);
}

/** A platform without FFI: every use says so (the default of `runCli`). */
export const NO_PLATFORM: Platform = {
  libc: () => unwired("libc binding"),
  kernelFs: () => unwired("access to the kernel's files"),
};

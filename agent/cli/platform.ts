/**
 * Host capabilities beyond {@link Host} that `agent/main.ts` wires into the
 * commands: the libc FFI binding (loaded on first use, for poll(2) on sysfs) and
 * the running kernel's release. Tests pass their own.
 *
 * @module
 */

import type { ReleaseSource } from "../compat/mod.ts";
import { AgentError } from "../errors.ts";
import type { Libc } from "../host/mod.ts";

/** What commands may need from the platform besides the Host. */
export interface Platform {
  /** The libc binding; opened on first call. Needs `--allow-ffi`. */
  libc: () => Libc;
  /** The running kernel's release. Needs `--allow-sys=osRelease`. */
  releases: ReleaseSource;
}

/** A platform without FFI or release: every use says so (the default of `runCli`). */
export const NO_PLATFORM: Platform = {
  libc: () => {
    throw new AgentError("This invocation has no libc binding (an internal wiring error).");
  },
  releases: {
    osRelease: () => {
      throw new AgentError("the running kernel's release is not wired in");
    },
  },
};

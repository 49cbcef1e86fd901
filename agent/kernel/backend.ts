/**
 * What every backend provides to the backend selection: a probe that says
 * whether (and how completely) the running kernel offers its interface, and an
 * opener. The RFC v1 sysfs backend (rfc_v1.ts) and the mainline `/dev/liveupdate`
 * backend (mainline/backend.ts) plug in here.
 *
 * @module
 */

import type { KernelFs, Libc } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { BackendName, Kernel, KernelFeatures, LuoState } from "./kernel.ts";

/** What a backend needs from the host and the configuration. */
export interface KernelContext {
  /** The kernel's files (sysfs, debugfs, the device node): `libcKernelFs` in production. */
  fs: KernelFs;
  /** The libc binding, loaded on first use (the state watcher's poll). */
  libc: () => Libc;
  /** Root of sysfs (`paths.sysfs`). */
  sysfs: string;
  /** Root of debugfs (`paths.debugfs`). */
  debugfs: string;
  /** The mainline character device (`kernel.device`). */
  device: string;
  /** Root of procfs (`paths.proc`; "/proc" when not given). */
  proc?: string;
  /** `kernel.watch_interval`, in ms. */
  watchInterval: number;
  log?: Logger;
}

/** What a probe found. */
export interface BackendProbe {
  backend: BackendName;
  /** Where the interface lives ("/sys/kernel/liveupdate", "/dev/liveupdate"). */
  location: string;
  /** Some part of the interface exists (automatic selection considers only these). */
  present: boolean;
  /** The interface is complete and usable. */
  usable: boolean;
  /** The paths that are missing. */
  missing: string[];
  /** What is missing or wrong, one sentence each, naming the path. */
  problems: string[];
  /** One sentence for `status`. */
  summary: string;
  /** What the interface offers, when usable. */
  features?: KernelFeatures;
  /** The state read while probing, when the interface has one. */
  state?: LuoState;
}

/** A backend the selection can probe and open. */
export interface BackendProvider {
  name: BackendName;
  /** Looks for the interface. Never throws for an absent or broken interface. */
  probe(context: KernelContext): Promise<BackendProbe>;
  /** Opens the interface a usable probe found. */
  open(context: KernelContext, probe: BackendProbe): Kernel;
}

/**
 * Everything the update flows need, passed in: the configuration, the layers
 * (kernel, systemd, devices, kexec, compatibility, fleet) and the host. The CLI
 * builds the real one (agent/cli/update_context.ts); tests build theirs.
 *
 * @module
 */

import type { CompatReport } from "../compat/mod.ts";
import type { Config } from "../config/mod.ts";
import type { DeviceLayer } from "../devices/mod.ts";
import type { FleetCoordinator } from "../fleet/mod.ts";
import type { Clock, FileSystem, KernelFs, ProcFacts } from "../host/mod.ts";
import type { KexecTools } from "../kexec/mod.ts";
import type { DeviceKernel, Kernel } from "../kernel/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { AttemptStore } from "../store/mod.ts";
import type { KexecTrigger, SystemdManager } from "../systemd/mod.ts";
import type { UpdateLock } from "./lock.ts";
import type { JournalHook } from "./steps.ts";

/** Facts about the running system the flows read (`<paths.proc>`). */
export type HostFacts = Pick<ProcFacts, "cmdline" | "osRelease" | "uptimeSeconds">;

/** What the update flows run against. */
export interface UpdateContext {
  config: Config;
  log: Logger;
  clock: Clock;
  /** The host's files: records, metrics, images (Deno's file API). */
  fs: FileSystem;
  store: AttemptStore;
  facts: HostFacts;
  /** Opens the kernel's live-update interface; throws KernelUnsupportedError. */
  openKernel(): Promise<Kernel>;
  /** Connects to systemd's manager (the same connection for the whole run). */
  systemd(): Promise<SystemdManager>;
  /** How the udev database and sysfs links are read (libc in production). */
  deviceFs: KernelFs;
  /** The device layer over a kernel's per-device part. */
  deviceLayer(kernel: DeviceKernel): DeviceLayer;
  kexec: KexecTools;
  /** How the kexec is issued (systemd's kexec.target in production). */
  kexecTrigger(manager: SystemdManager): KexecTrigger;
  /** The compatibility of the running and the configured target kernel. */
  compat(): Promise<CompatReport>;
  /** Takes the one-update-at-a-time lock (throws BusyError). */
  lock(): UpdateLock;
  /** The fleet coordinator, when `fleet.backend` is not "none". */
  fleet?: FleetCoordinator;
  /** The agent's version, recorded in every attempt. */
  agentVersion: string;
  /** When this process started (for timings after the kexec). */
  startedAt: Date;
  /** Called after every journal write (tests crash the agent there). */
  onJournal?: JournalHook;
}

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
import type { BrokerStatus, PrepareResult, SessionRecord } from "../sessions/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { AttemptStore } from "../store/mod.ts";
import type { KexecTrigger, SystemdManager } from "../systemd/mod.ts";
import type { UpdateLock } from "./lock.ts";
import type { JournalHook } from "./steps.ts";

/** Facts about the running system the flows read (`<paths.proc>`). */
export type HostFacts = Pick<ProcFacts, "cmdline" | "osRelease" | "uptimeSeconds" | "bootId">;

/**
 * The session broker (agent/sessions/, liveupdate-sessions.service) as the update
 * flow drives it on a mainline kernel: the barrier before the kexec, its undo,
 * and what became of the sessions after it.
 */
export interface SessionsControl {
  /** The broker's socket, for messages. */
  readonly socket: string;
  /** The broker's state. Throws when it does not answer (not running). */
  status(): Promise<BrokerStatus>;
  /**
   * The barrier: every subscribed client gets its session and must report READY
   * within `timeout` ms; otherwise the broker aborts (nothing stays preserved) and
   * says which clients held it up. Throws when the broker cannot be asked.
   */
  prepare(timeout: number): Promise<PrepareResult>;
  /**
   * Abandons a preparation: the broker closes every session, which unpreserves
   * them. Resolves when the broker is not running (it holds nothing then).
   */
  abort(reason: string): Promise<void>;
  /** The broker's record of the sessions it handed over (`<state_dir>/sessions.json`). */
  record(): Promise<SessionRecord | null>;
}

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
  /**
   * The compatibility of the running and the configured target kernel, by the rule
   * of `kernel`'s interface (RFC v1 when not given).
   */
  compat(kernel?: Kernel): Promise<CompatReport>;
  /** The session broker (mainline kernels); absent where it cannot be reached. */
  sessions?: SessionsControl;
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

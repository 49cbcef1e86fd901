/**
 * The plan of an update, as preflight approves it and the record keeps it: the
 * target and its command line, both kernels' versions and the verdict, the
 * devices to preserve, the units of each phase.
 *
 * @module
 */

import type { HandoverAbi } from "../compat/mod.ts";
import type { Phase } from "../config/mod.ts";

/** A device the plan preserves. */
export interface PlannedDevice {
  path: string;
  id: string;
  /** The unit that reclaims it after the update, if the udev rules name one. */
  unit?: string;
}

/** One phase's units. */
export interface PlannedPhase {
  phase: Phase;
  stop: readonly string[];
  start: readonly string[];
  target: string;
  timeoutMs: number;
}

/** What a mainline (`/dev/liveupdate`) update plans and records before the kexec. */
export interface MainlinePlan {
  /** The device node. */
  device: string;
  /** The boot the update is prepared in (a kexec gives the next boot another id). */
  bootId: string | null;
  /** The running kernel's outgoing liveupdate number (debugfs); the next kernel's is one more. */
  liveupdateNumber: number | null;
  /** The session broker's socket. */
  socket: string;
  /** The clients subscribed when preflight ran (session names). */
  subscribers: string[];
  /** Why no device is preserved. */
  devices: string;
}

/** The plan of one update. */
export interface Plan {
  backend: string;
  target: {
    kernel: string;
    initrd: string | null;
    cmdline: string;
    release: string | null;
    luoVersion: string | null;
    /** Handover compatible strings (mainline kernels). */
    compatible?: HandoverAbi | null;
  };
  running: {
    release: string | null;
    luoVersion: string | null;
    cmdline: string;
    /** Handover compatible strings (mainline kernels). */
    compatible?: HandoverAbi | null;
  };
  compat: { verdict: string; sentence: string; allowed: boolean; override: boolean };
  devices: {
    /** Whether this kernel preserves devices at all. */
    supported: boolean;
    selected: PlannedDevice[];
    /** Ancestors preserved with them. */
    ancestors: string[];
    /** Devices whose `requested` flag the agent will change ([path, from, to]). */
    changes: { path: string; from: boolean; to: boolean }[];
  };
  phases: PlannedPhase[];
  /** kexec's arguments for the load. */
  kexecArgs: string[];
  /** A kexec kernel was already loaded before the update (it will be replaced). */
  kexecWasLoaded: boolean | null;
  /** Stop at state prepared, without issuing the kexec. */
  stopAtPrepared: boolean;
  /** How the kexec will be issued. */
  issue: "systemd" | "command";
  /** Mainline kernels: the sessions' side of the update. */
  mainline?: MainlinePlan;
}

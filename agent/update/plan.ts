/**
 * The plan of an update, as preflight approves it and the record keeps it: the
 * target and its command line, both kernels' versions and the verdict, the
 * devices to preserve, the units of each phase.
 *
 * @module
 */

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

/** The plan of one update. */
export interface Plan {
  backend: string;
  target: {
    kernel: string;
    initrd: string | null;
    cmdline: string;
    release: string | null;
    luoVersion: string | null;
  };
  running: { release: string | null; luoVersion: string | null; cmdline: string };
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
}

/**
 * The agent's one door to the kernel's Live Update Orchestrator. Backends (the RFC
 * v1 sysfs files, the mainline /dev/liveupdate device) implement this interface;
 * every caller uses only it.
 *
 * A backend offers up to three parts, each `null` (or absent) when the kernel has
 * no such thing: the global state machine (RFC v1: `normal` → `prepared` → kexec →
 * `updated` → `normal`; mainline has none), per-device preservation (RFC v1;
 * mainline preserves no devices) and sessions of preserved files (mainline
 * `/dev/liveupdate`; RFC v1 has none). Callers check for the part they need, or use
 * {@link requireStateMachine} / {@link requireDevices} to get a clear error.
 *
 * @module
 */

import { type KernelError, KernelUnsupportedError } from "./kernel_error.ts";
import type { KhoDirection, KhoTree, KhoUnavailable } from "./mainline/kho.ts";

/** The global live-update states, in the order an update passes them. */
export const LUO_STATES = ["normal", "prepared", "updated"] as const;

/** The global live-update state. */
export type LuoState = typeof LUO_STATES[number];

/** A device, named by its path below `<sysfs>/devices` ("pci0000:00/0000:00:02.0"). */
export type DevicePath = string;

/** A device's live-update flags. */
export interface DeviceFlags {
  requested: boolean;
  preserved: boolean;
  reclaimed: boolean;
}

/** The per-device side of the interface, as the device selection uses it. */
export interface DeviceKernel {
  /** The global state (changing `requested` needs `normal`). */
  state(): Promise<LuoState>;
  /** Reads a device's flags. Throws KernelError (ENOENT when the device vanished). */
  readDevice(device: DevicePath): Promise<DeviceFlags>;
  /** Writes `requested`. Throws KernelError with the kernel's errno on refusal. */
  setRequested(device: DevicePath, requested: boolean): Promise<void>;
  /**
   * Optional fast path for many devices: `requested` of each, in order; an entry is
   * the KernelError reading that device failed with. The device selection uses it
   * when present (it reconciles tens of thousands of devices).
   */
  readRequestedMany?(devices: readonly DevicePath[]): Promise<(boolean | KernelError)[]>;
  /**
   * Optional fast path: writes `requested` = `value` on each device, in order, and
   * reads each flag back. An entry is null when the flag now reads `value`, else the
   * KernelError: the kernel's errno when the write failed, none when the flag reads
   * back differently. One device's failure does not stop the others.
   */
  setRequestedMany?(
    devices: readonly DevicePath[],
    value: boolean,
  ): Promise<(KernelError | null)[]>;
  /**
   * Optional fast path for a read that a write of `value` may follow (a reconcile):
   * reads `requested` of each device, in order (as readRequestedMany), and keeps the
   * file of each device whose flag is not `value` open, so that writing `value`
   * there (`write`, as setRequestedMany) opens nothing again. The caller closes
   * what is left (`close`).
   */
  holdRequestedMany?(devices: readonly DevicePath[], value: boolean): Promise<HeldRequested>;
}

/** `requested` files read and kept open for a write (see DeviceKernel.holdRequestedMany). */
export interface HeldRequested {
  /** `requested` of each device, in order, or the KernelError reading it failed with. */
  readonly flags: readonly (boolean | KernelError)[];
  /**
   * Writes the value the files are held for to the devices at `indexes` (into the
   * device list) and reads each back; entries as DeviceKernel.setRequestedMany's.
   */
  write(indexes: readonly number[]): Promise<(KernelError | null)[]>;
  /** Closes every file still held. */
  close(): void;
}

/** The kernel interfaces the agent can drive. */
export const BACKENDS = ["rfc-v1", "mainline"] as const;

/** One of {@link BACKENDS}. */
export type BackendName = typeof BACKENDS[number];

/** A LUO ABI version, as the kernel hands it over (`struct { u32 major; u32 minor; }`). */
export interface LuoVersion {
  major: number;
  minor: number;
}

/** How a watcher noticed a state. */
export type ObservedVia =
  /** The first read, when the watch started. */
  | "initial"
  /** A poll(2) wake-up from the kernel (sysfs_notify). */
  | "notification"
  /** The bounded re-read after `interval` without a wake-up. */
  | "interval";

/** One state a watcher saw. */
export interface StateObservation {
  state: LuoState;
  via: ObservedVia;
}

/** Options of {@link StateMachine.watch}. */
export interface WatchOptions {
  /** Ends the iteration (quietly) and releases everything the watcher holds. */
  signal?: AbortSignal;
  /**
   * The longest a change may go unnoticed when the kernel sends no wake-up, in ms.
   * Defaults to the configured `kernel.watch_interval`.
   */
  interval?: number;
}

/** The global live-update state machine (RFC v1). */
export interface StateMachine {
  /** Reads the state. Throws KernelError on an unreadable or unexpected file. */
  state(): Promise<LuoState>;
  /** normal → prepared: every subsystem's PREPARE callback runs. Throws KernelError. */
  prepare(): Promise<void>;
  /** prepared → normal: every subsystem gets CANCEL. Throws KernelError. */
  cancel(): Promise<void>;
  /** updated → normal, in the new kernel after the update. Throws KernelError. */
  finish(): Promise<void>;
  /**
   * Yields the current state, then every change, until `options.signal` aborts.
   * Uses the kernel's wake-ups and re-reads at least every `interval`, so a lost
   * wake-up delays a change by at most that long. Throws KernelError if the state
   * file becomes unreadable or holds something unexpected.
   */
  watch(options?: WatchOptions): AsyncGenerator<StateObservation, void, undefined>;
}

/** What a backend offers (detected when it was opened). */
export interface KernelFeatures {
  /** A global state machine with prepare, cancel and finish. */
  stateMachine: boolean;
  /** Per-device preservation (`requested`/`preserved`/`reclaimed`). */
  devices: boolean;
  /**
   * Files found beside the required ones that the agent knows of but does not
   * drive (RFC v1: "cancel", "reset", "enabled" from the cover letter). For
   * `status`; never assumed.
   */
  extraFiles: readonly string[];
}

/**
 * The session part of a kernel (mainline `/dev/liveupdate`): clients preserve
 * files (memfds) in named sessions, the kernel serializes them inside reboot(2)
 * and the next kernel hands them back by name. The sessions themselves are the
 * session broker's (agent/sessions/); the update flow reads the handover.
 */
export interface SessionKernel {
  /** The character device; opened only for the moment of a request, never held. */
  readonly device: string;
  /**
   * What debugfs shows of the KHO handover: `out`, what this kernel will hand over
   * (the LUO format and liveupdate number); `in`, what the previous kernel handed
   * over. Never throws: an unreadable tree says why.
   */
  kho(direction: KhoDirection): KhoTree | KhoUnavailable;
}

/** What the previous kernel handed over through KHO, as far as the agent can read it. */
export type IncomingHandover =
  /** The orchestrator's node was found (a live-update boot). */
  | {
    status: "present";
    file: string;
    node: string;
    /** The LUO ABI version (RFC v1); null where the kernel names no version (mainline). */
    version: LuoVersion | null;
    /** What else was handed over, one sentence (mainline: the previous release). */
    detail?: string;
  }
  /** The handover data is readable and holds no orchestrator node (an ordinary boot). */
  | { status: "absent"; file: string; detail: string }
  /** The agent cannot tell (debugfs not mounted, KHO debugfs not built, not readable). */
  | { status: "unavailable"; file: string; detail: string };

/** A live-update interface of the running kernel. */
export interface Kernel {
  /** Which interface this is. */
  readonly backend: BackendName;
  /** What it offers. */
  readonly features: KernelFeatures;
  /** Where it lives, for messages and `status` ("/sys/kernel/liveupdate"). */
  readonly location: string;
  /** The global state machine, or null when the kernel has none (mainline). */
  readonly stateMachine: StateMachine | null;
  /** Per-device preservation, or null when this kernel preserves no devices (mainline). */
  readonly devices: DeviceKernel | null;
  /** Sessions of preserved files (mainline); null or absent when the kernel has none (RFC v1). */
  readonly sessions?: SessionKernel | null;
  /** What the previous kernel handed over (the incoming KHO data). */
  incoming(): Promise<IncomingHandover>;
}

/** The kernel's state machine; throws KernelUnsupportedError when it has none. */
export function requireStateMachine(kernel: Kernel): StateMachine {
  if (kernel.stateMachine) return kernel.stateMachine;
  throw new KernelUnsupportedError(
    `The ${kernel.backend} live-update interface (${kernel.location}) has no global ` +
      "prepare/finish state machine; this operation needs the RFC v1 interface.",
    ["state machine"],
  );
}

/** The kernel's per-device part; throws KernelUnsupportedError when it preserves no devices. */
export function requireDevices(kernel: Kernel): DeviceKernel {
  if (kernel.devices) return kernel.devices;
  throw new KernelUnsupportedError(
    `The ${kernel.backend} live-update interface (${kernel.location}) preserves no devices; ` +
      "remove the device selection from the configuration or use a kernel with the RFC v1 interface.",
    ["device preservation"],
  );
}

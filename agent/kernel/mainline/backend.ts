/**
 * The mainline backend as the rest of the agent sees it: detection (does the
 * running kernel offer `/dev/liveupdate`, and is it set up to hand sessions
 * over?), and the backend object in the shape of the common kernel interface —
 * no global state machine, no device preservation, the incoming handover, and
 * the device for sessions.
 *
 * Shaped after the `Kernel`/`BackendProvider` interface of agent/kernel/ on the
 * `kernel` branch (backend, features, location, stateMachine, devices,
 * incoming(); probe/open): at merge, `mainlineProbe` and `MainlineKernel` plug
 * into its selection in place of its mainline stand-in.
 *
 * @module
 */

import type { Clock, FileSystem } from "../../host/host.ts";
import type { Libc } from "../../host/libc.ts";
import { KernelUnsupportedError } from "../kernel_error.ts";
import { LiveupdateDevice } from "./device.ts";
import { isKhoTree, type KhoTree, type KhoUnavailable, readKhoTree } from "./kho.ts";
import { checkCmdline } from "./preflight.ts";

/** Why device selection does nothing here, in one sentence. */
export const NO_DEVICES =
  "This kernel's live update (mainline /dev/liveupdate) preserves files only (memfds), no " +
  "devices: device selection does nothing, and devices are reset by the kexec as usual.";

/** What the backend needs from the host and the configuration. */
export interface MainlineContext {
  fs: Pick<FileSystem, "stat" | "readTextFile" | "readFile">;
  /** `kernel.device`. */
  device: string;
  /** `paths.debugfs`. */
  debugfs: string;
  /** `paths.proc`. */
  proc: string;
}

/** What a probe found (the `BackendProbe` shape of agent/kernel/backend.ts). */
export interface MainlineProbe {
  backend: "mainline";
  location: string;
  /** The device node exists. */
  present: boolean;
  /** The device node is a character device (it is not opened while probing). */
  usable: boolean;
  missing: string[];
  problems: string[];
  summary: string;
  features?: { stateMachine: false; devices: false; extraFiles: readonly string[] };
  /** Mainline details for `status`. */
  details: MainlineDetails;
}

/** Mainline details for `status --json`. */
export interface MainlineDetails {
  /** The running kernel's release. */
  release: string | null;
  /** Whether the command line has kho=on and liveupdate=on. */
  cmdline: { ok: boolean; message: string } | null;
  /** GET_NAME (Linux 7.2+); older kernels fall back to the /proc fd link. */
  getNameIoctl: boolean | null;
  devices: { preserved: false; reason: string };
  /** What this kernel will hand over (debugfs kho/out). */
  outgoing: { luo: string | null; liveupdateNumber: number | null } | { unavailable: string };
  /** What the previous kernel handed over (debugfs kho/in). */
  incoming:
    | { kho: string | null; previousRelease: string | null; kexecCount: number | null }
    | { unavailable: string };
}

/** Whether `release` ("7.3.4", "6.19.0-rc1") is at least major.minor. */
export function releaseAtLeast(release: string, major: number, minor: number): boolean | null {
  const match = release.match(/^(\d+)\.(\d+)/);
  if (!match) return null;
  const [a, b] = [Number(match[1]), Number(match[2])];
  return a > major || (a === major && b >= minor);
}

function outgoingSummary(tree: KhoTree | KhoUnavailable): MainlineDetails["outgoing"] {
  if (!isKhoTree(tree)) return { unavailable: tree.reason };
  return {
    luo: tree.luo?.compatible ?? null,
    liveupdateNumber: tree.luo?.liveupdateNumber ?? null,
  };
}

function incomingSummary(tree: KhoTree | KhoUnavailable): MainlineDetails["incoming"] {
  if (!isKhoTree(tree)) return { unavailable: tree.reason };
  return {
    kho: tree.kho,
    previousRelease: tree.kexec?.previousRelease ?? null,
    kexecCount: tree.kexec?.kexecCount ?? null,
  };
}

/**
 * Looks for the mainline interface. Never throws for an absent interface and
 * never opens the device (systemd may hold it). Needs read access to the
 * device node, /proc and debugfs.
 */
export async function mainlineProbe(context: MainlineContext): Promise<MainlineProbe> {
  const { fs, device } = context;
  const release = await fs.readTextFile(`${context.proc}/sys/kernel/osrelease`)
    .then((text) => text.trim(), () => null);
  const cmdline = await fs.readTextFile(`${context.proc}/cmdline`).then(
    (text) => checkCmdline(text, "running"),
    () => null,
  );
  const [outgoing, incoming] = await Promise.all([
    readKhoTree(fs, context.debugfs, "out"),
    readKhoTree(fs, context.debugfs, "in"),
  ]);
  const details: MainlineDetails = {
    release,
    cmdline: cmdline && { ok: cmdline.ok, message: cmdline.message },
    getNameIoctl: release === null ? null : releaseAtLeast(release, 7, 2),
    devices: { preserved: false, reason: NO_DEVICES },
    outgoing: outgoingSummary(outgoing),
    incoming: incomingSummary(incoming),
  };
  const probe: MainlineProbe = {
    backend: "mainline",
    location: device,
    present: false,
    usable: false,
    missing: [],
    problems: [],
    summary: "",
    details,
  };
  try {
    const info = await fs.stat(device);
    probe.present = true;
    if (info.isCharDevice) {
      probe.usable = true;
      probe.features = { stateMachine: false, devices: false, extraFiles: [] };
    } else {
      probe.problems.push(`${device} is not a character device.`);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      probe.missing.push(device);
      probe.problems.push(
        `No ${device}: the running kernel has no mainline live update (Linux 6.19+ with ` +
          'CONFIG_LIVEUPDATE, booted with "kho=on liveupdate=on").',
      );
    } else {
      probe.present = true;
      probe.problems.push(`${device} cannot be examined (${error}).`);
    }
  }
  if (cmdline && !cmdline.ok) probe.problems.push(cmdline.message);
  probe.summary = probe.usable
    ? `Mainline live update at ${device}` +
      (release ? ` (Linux ${release})` : "") +
      "; sessions of memfds, no devices."
    : probe.problems[0] ?? `No ${device}.`;
  return probe;
}

/** The incoming handover as the common interface reports it. */
export type MainlineIncoming =
  | {
    status: "present";
    file: string;
    node: "LUO";
    version: null;
    details: MainlineDetails["incoming"];
  }
  | { status: "absent" | "unavailable"; file: string; detail: string };

/** The mainline backend (the `Kernel` shape of agent/kernel/kernel.ts). */
export class MainlineKernel {
  readonly backend = "mainline" as const;
  readonly features = { stateMachine: false, devices: false, extraFiles: [] as readonly string[] };
  /** Mainline has no global prepare/finish: sessions are the unit of work. */
  readonly stateMachine = null;
  /** Mainline preserves no devices ({@link NO_DEVICES}). */
  readonly devices = null;
  readonly location: string;
  /** The device, for sessions (open, act, close; busy retried). */
  readonly device: LiveupdateDevice;
  readonly #context: MainlineContext;

  constructor(context: MainlineContext, host: { libc: Libc; clock: Clock; busyTimeout: number }) {
    this.#context = context;
    this.location = context.device;
    this.device = new LiveupdateDevice({
      libc: host.libc,
      clock: host.clock,
      path: context.device,
      busyTimeout: host.busyTimeout,
    });
  }

  /**
   * Opens the backend after a probe found it usable; throws
   * KernelUnsupportedError naming what is missing otherwise.
   */
  static open(
    context: MainlineContext,
    probe: MainlineProbe,
    host: { libc: Libc; clock: Clock; busyTimeout: number },
  ): MainlineKernel {
    if (!probe.usable) throw new KernelUnsupportedError(probe.summary, probe.missing);
    return new MainlineKernel(context, host);
  }

  /**
   * What the previous kernel handed over: "present" after a kexec with KHO
   * (debugfs kho/in), "unavailable" when debugfs cannot tell. Sessions
   * themselves are retrieved by name through {@link device}.
   */
  async incoming(): Promise<MainlineIncoming> {
    const tree = await readKhoTree(this.#context.fs, this.#context.debugfs, "in");
    if (!isKhoTree(tree)) {
      return { status: "unavailable", file: tree.directory, detail: tree.reason };
    }
    return {
      status: "present",
      file: tree.directory,
      node: "LUO",
      version: null,
      details: incomingSummary(tree),
    };
  }
}

/**
 * The mainline backend in the shape of the common kernel interface
 * (agent/kernel/kernel.ts): detection (does the running kernel offer
 * `/dev/liveupdate`?), and the backend object — no global state machine, no
 * device preservation, a session part (the device and the KHO handover as
 * debugfs shows it) and the incoming handover.
 *
 * Everything goes through the kernel context: the device node, procfs and
 * debugfs through its KernelFs (libc in production; Deno's file API refuses
 * /dev, /proc and /sys under the agent's permissions). Neither the probe nor the
 * backend opens the device: systemd opens it at boot and just before a kexec
 * (one opener at a time), and the session broker opens it only for the moment
 * of a request (agent/kernel/mainline/device.ts).
 *
 * @module
 */

import { failed } from "../../host/kernel_fs.ts";
import type { BackendProbe, BackendProvider, KernelContext } from "../backend.ts";
import type { IncomingHandover, Kernel, KernelFeatures, SessionKernel } from "../kernel.ts";
import { KernelUnsupportedError } from "../kernel_error.ts";
import {
  isKhoTree,
  type KhoDirection,
  type KhoTree,
  type KhoUnavailable,
  readKhoTree,
} from "./kho.ts";

/** Why device selection does nothing here, in one sentence. */
export const NO_DEVICES =
  "This kernel's live update (mainline /dev/liveupdate) preserves files only (memfds), no " +
  "devices: device selection does nothing, and devices are reset by the kexec as usual.";

/** What the mainline interface offers. */
export const MAINLINE_FEATURES: KernelFeatures = {
  stateMachine: false,
  devices: false,
  extraFiles: [],
};

/** Whether `release` ("7.3.4", "6.19.0-rc1") is at least major.minor; null when unparsable. */
export function releaseAtLeast(release: string, major: number, minor: number): boolean | null {
  const match = release.match(/^(\d+)\.(\d+)/);
  if (!match) return null;
  const [a, b] = [Number(match[1]), Number(match[2])];
  return a > major || (a === major && b >= minor);
}

/** The running kernel's release from `<proc>/sys/kernel/osrelease`, or null. */
export function runningRelease(context: KernelContext): string | null {
  const bytes = context.fs.readFile(`${context.proc ?? "/proc"}/sys/kernel/osrelease`, 4096);
  if (failed(bytes)) return null;
  return new TextDecoder().decode(bytes).trim() || null;
}

/**
 * Looks for the mainline interface: `kernel.device` as a character device. Never
 * throws for an absent interface and never opens the device. Needs read access to
 * the device node's directory and procfs (through the context's KernelFs).
 */
export function probeMainline(context: KernelContext): BackendProbe {
  const location = context.device;
  const probe: BackendProbe = {
    backend: "mainline",
    location,
    present: false,
    usable: false,
    missing: [],
    problems: [],
    summary: "",
  };
  const info = context.fs.stat(location);
  if (failed(info)) {
    if (info.errno === "ENOENT" || info.errno === "ENOTDIR") {
      probe.missing.push(location);
      probe.problems.push(
        `No ${location}: the running kernel has no mainline live-update interface (Linux 6.19+ ` +
          'with CONFIG_LIVEUPDATE, booted with "kho=on liveupdate=on").',
      );
    } else {
      probe.present = true;
      probe.problems.push(`${location} cannot be examined (${info.errno}).`);
    }
  } else {
    probe.present = true;
    if (info.type === "char-device") {
      probe.usable = true;
      probe.features = MAINLINE_FEATURES;
    } else {
      probe.problems.push(`${location} is not a character device; check kernel.device.`);
    }
  }
  if (probe.usable) {
    const release = runningRelease(context);
    probe.summary = `Mainline live-update interface at ${location}` +
      (release ? ` (Linux ${release})` : "") + ": sessions of preserved files, no devices.";
  } else {
    probe.summary = probe.problems[0]!;
  }
  return probe;
}

/** One sentence on what an incoming tree says about the previous kernel. */
function describeIncoming(tree: KhoTree): string {
  const parts: string[] = [];
  if (tree.kexec) {
    parts.push(
      `the previous kernel was ${tree.kexec.previousRelease || "(release not stated)"}, kexec ` +
        `${tree.kexec.kexecCount} since the last cold boot`,
    );
  }
  if (tree.kho) parts.push(`KHO format ${tree.kho}`);
  parts.push("LUO sessions handed over");
  return parts.join("; ");
}

/** The mainline backend. */
class MainlineKernel implements Kernel, SessionKernel {
  readonly backend = "mainline" as const;
  readonly location: string;
  readonly device: string;
  /** Mainline has no global prepare/finish: sessions are the unit of work. */
  readonly stateMachine = null;
  /** Mainline preserves no devices ({@link NO_DEVICES}). */
  readonly devices = null;
  readonly sessions: SessionKernel = this;

  constructor(private readonly context: KernelContext, readonly features: KernelFeatures) {
    this.location = context.device;
    this.device = context.device;
  }

  kho(direction: KhoDirection): KhoTree | KhoUnavailable {
    return readKhoTree(this.context.fs, this.context.debugfs, direction);
  }

  /**
   * What the previous kernel handed over: "present" when the incoming KHO tree
   * has a LUO sub-tree (a live-update kexec), "absent" when debugfs shows KHO but
   * no incoming LUO (a cold boot, or a kexec without live update), "unavailable"
   * when debugfs cannot tell. Sessions themselves are retrieved by the broker.
   */
  incoming(): Promise<IncomingHandover> {
    const tree = this.kho("in");
    if (!isKhoTree(tree)) {
      const root = this.context.fs.stat(`${this.context.debugfs}/kho`);
      return Promise.resolve(
        !failed(root) && root.type === "directory"
          ? { status: "absent", file: tree.directory, detail: `${tree.directory}: ${tree.reason}` }
          : { status: "unavailable", file: tree.directory, detail: tree.reason },
      );
    }
    if (!tree.hasLuo) {
      return Promise.resolve({
        status: "absent",
        file: tree.directory,
        detail: `${tree.directory} holds no LUO sub-tree: the previous kernel handed no ` +
          "live-update sessions over (a kexec without live update)",
      });
    }
    return Promise.resolve({
      status: "present",
      file: `${tree.directory}/sub_fdts/LUO`,
      node: "LUO",
      version: null,
      detail: describeIncoming(tree),
    });
  }
}

/** The mainline backend for the selection (agent/kernel/select.ts). */
export const mainlineProvider: BackendProvider = {
  name: "mainline",
  probe: (context) => Promise.resolve(probeMainline(context)),
  open(context, probe) {
    if (!probe.usable) throw new KernelUnsupportedError(probe.summary, probe.missing);
    return new MainlineKernel(context, probe.features ?? MAINLINE_FEATURES);
  },
};

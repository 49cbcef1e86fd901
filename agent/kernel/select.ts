/**
 * Choosing the backend: the one `kernel.backend` names, or with "auto" the one
 * interface the running kernel offers. Every backend is probed the same way, so
 * `status` can say for each what is there and what is missing.
 *
 * @module
 */

import type { Config } from "../config/mod.ts";
import type { KernelFs, Libc } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { BackendProbe, BackendProvider, KernelContext } from "./backend.ts";
import type { BackendName, Kernel } from "./kernel.ts";
import { KernelUnsupportedError } from "./kernel_error.ts";
import { mainlineProvider } from "./mainline/backend.ts";
import { rfcV1Provider } from "./rfc_v1.ts";

/** The backends, in the order automatic selection reports them. */
export const PROVIDERS: readonly BackendProvider[] = [rfcV1Provider, mainlineProvider];

/** `kernel.backend`. */
export type BackendChoice = "auto" | BackendName;

/** The kernel context for `config`. */
export function kernelContext(
  config: Config,
  host: { fs: KernelFs; libc: () => Libc; log?: Logger },
): KernelContext {
  return {
    fs: host.fs,
    libc: host.libc,
    log: host.log,
    sysfs: config.paths.sysfs,
    debugfs: config.paths.debugfs,
    device: config.kernel.device,
    proc: config.paths.proc,
    watchInterval: config.kernel.watch_interval,
  };
}

/** What the selection found. */
export interface KernelDetection {
  choice: BackendChoice;
  /** Every probe made (one for an explicit choice). */
  probes: BackendProbe[];
  /** The usable probe chosen, if any. */
  selected?: BackendProbe;
  /** Why nothing was chosen: one sentence (or a few) an operator can act on. */
  reason?: string;
  /** The paths whose absence made it fail. */
  missing: string[];
}

/** Probes the backends `choice` allows and picks one. Never throws for an absent interface. */
export async function detectKernel(
  context: KernelContext,
  choice: BackendChoice,
  providers: readonly BackendProvider[] = PROVIDERS,
): Promise<KernelDetection> {
  const candidates = choice === "auto"
    ? providers
    : providers.filter((provider) => provider.name === choice);
  if (candidates.length === 0) {
    return {
      choice,
      probes: [],
      reason: `This build of the agent has no "${choice}" backend.`,
      missing: [],
    };
  }
  const probes = await Promise.all(candidates.map((provider) => provider.probe(context)));
  const usable = probes.filter((probe) => probe.usable);
  const missing = probes.flatMap((probe) => probe.missing);
  if (usable.length === 1) return { choice, probes, selected: usable[0], missing: [] };
  if (usable.length > 1) {
    return {
      choice,
      probes,
      missing: [],
      reason: `The kernel offers several live-update interfaces (${
        usable.map((probe) => `${probe.backend} at ${probe.location}`).join(", ")
      }); set kernel.backend to the one to drive.`,
    };
  }
  if (choice !== "auto") {
    return {
      choice,
      probes,
      missing,
      reason: `${probes[0]!.summary} (kernel.backend = "${choice}")`,
    };
  }
  const present = probes.filter((probe) => probe.present);
  const reported = present.length > 0 ? present : probes;
  return {
    choice,
    probes,
    missing,
    reason: `The running kernel offers no usable live-update interface: ${
      reported.map((probe) => probe.summary).join(" ")
    }`,
  };
}

/**
 * Detects and opens the kernel's live-update interface. Throws
 * KernelUnsupportedError saying what is missing when there is none to drive.
 */
export async function openKernel(
  context: KernelContext,
  choice: BackendChoice,
  providers: readonly BackendProvider[] = PROVIDERS,
): Promise<Kernel> {
  const detection = await detectKernel(context, choice, providers);
  if (!detection.selected) {
    throw new KernelUnsupportedError(
      detection.reason ?? "No live-update interface.",
      detection.missing,
    );
  }
  const provider = providers.find((p) => p.name === detection.selected!.backend)!;
  return provider.open(context, detection.selected);
}

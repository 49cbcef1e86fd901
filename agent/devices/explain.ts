/**
 * Explanations of the kernel's refusals, in the operator's terms. The kernel
 * answers a refused `requested` write with a bare errno; the agent adds what it
 * can tell from sysfs.
 *
 * EINVAL on writing 1 means the device or one of its ancestors has a driver or
 * bus without live-update callbacks (the kernel logs which: "driver[x] no
 * liveupdate callback"). sysfs has no attribute saying so, but every device the
 * kernel accepted proves itself and all its ancestors supported; the devices on
 * the refused path that are not so proven are the suspects. Devices with neither
 * a driver nor a bus are never the reason (the kernel checks only those two).
 *
 * @module
 */

import type { DevicePath } from "../kernel/kernel.ts";
import type { Suspect } from "./devices_error.ts";
import type { DeviceIdentity } from "./sysfs_resolver.ts";

/** What the explanations know about the devices the kernel accepted. */
export interface Evidence {
  /** Devices the kernel accepted `requested`=1 for, and all their ancestors. */
  knownGood: ReadonlySet<DevicePath>;
  /** "driver|bus" pairs seen on known-good devices. */
  goodPairs: ReadonlySet<string>;
}

/** The key of a driver/bus pair in {@link Evidence.goodPairs}. */
export function pairKey(identity: DeviceIdentity): string {
  return `${identity.driver ?? ""}|${identity.bus ?? ""}`;
}

/** The devices on `path`'s way (itself, then its ancestors) that may lack support. */
export function suspectsFor(
  path: DevicePath,
  ancestors: readonly DevicePath[],
  evidence: Evidence,
  identify: ((path: DevicePath) => DeviceIdentity) | undefined,
): Suspect[] {
  const suspects: Suspect[] = [];
  for (const candidate of [path, ...ancestors]) {
    if (evidence.knownGood.has(candidate)) continue;
    const identity = identify?.(candidate) ?? {};
    // Known not to matter: no driver and no bus (when sysfs could tell).
    if (identify && identity.driver === undefined && identity.bus === undefined) continue;
    suspects.push({
      path: candidate,
      ...(identity.driver !== undefined ? { driver: identity.driver } : {}),
      ...(identity.bus !== undefined ? { bus: identity.bus } : {}),
      pairWorksElsewhere: evidence.goodPairs.has(pairKey(identity)),
    });
  }
  return suspects;
}

function describe(suspect: Suspect): string {
  const parts = [
    ...(suspect.driver !== undefined ? [`driver ${suspect.driver}`] : []),
    ...(suspect.bus !== undefined ? [`bus ${suspect.bus}`] : []),
  ];
  if (parts.length === 0) return `"${suspect.path}"`;
  const note = suspect.pairWorksElsewhere ? "; that pair works for other devices here" : "";
  return `"${suspect.path}" (${parts.join(", ")}${note})`;
}

/**
 * The suspect most likely to blame for an EINVAL on `path`, judged across all the
 * run's refusals: an ancestor that is on the way of several refused devices (and
 * of no accepted one, or it would not be a suspect) explains them all at once.
 * `shared` counts, per suspect, the refusals it appears in.
 */
export function likeliest(
  suspects: readonly Suspect[],
  shared: ReadonlyMap<DevicePath, number>,
): Suspect | undefined {
  let best: Suspect | undefined;
  let bestCount = 1;
  let tie = false;
  for (const suspect of suspects) {
    const count = shared.get(suspect.path) ?? 0;
    if (count > bestCount) [best, bestCount, tie] = [suspect, count, false];
    else if (count === bestCount && best) tie = true;
  }
  if (best && !tie) return best;
  const unproven = suspects.filter((suspect) => !suspect.pairWorksElsewhere);
  return unproven.length === 1 ? unproven[0] : undefined;
}

/** The sentence explaining an EINVAL on requesting `path`. */
export function explainUnsupported(
  path: DevicePath,
  id: string | undefined,
  suspects: readonly Suspect[],
  shared: ReadonlyMap<DevicePath, number> = new Map(),
): string {
  const name = id ? `"${path}" (${id})` : `"${path}"`;
  let which: string;
  if (suspects.length === 0) {
    which = "sysfs cannot tell which: every device on the way is known to work.";
  } else if (suspects.length === 1) {
    which = `The only device on the way not known to support it is ${describe(suspects[0]!)}.`;
  } else {
    const list = suspects.map(describe).join(", ");
    const best = likeliest(suspects, shared);
    const count = best ? shared.get(best.path) ?? 0 : 0;
    const why = count > 1 ? ` (it is on the way of all ${count} devices refused below it)` : "";
    which = `Devices on the way not known to support it: ${list}.` +
      (best ? ` Most likely ${describe(best)}${why}.` : "");
  }
  return `The kernel refused to preserve ${name} (EINVAL): the device or one of its ancestors ` +
    `has a driver or bus without live-update support. ${which} The kernel log names it ` +
    '("no liveupdate callback" in journalctl -k). Bind the device to a driver with ' +
    "live-update support, or change the udev rule so it is not tagged.";
}

/** The sentence for a device that vanished while the agent was changing or reading it. */
export function explainVanished(path: DevicePath, id: string | undefined): string {
  const name = id ? `"${path}" (${id})` : `"${path}"`;
  return `The device ${name} vanished (ENOENT): it was removed or hot-unplugged while the ` +
    'agent worked on it. Run "udevadm settle" and retry.';
}

/** The sentence for a kernel that left (or is not in) state normal. */
export function explainState(state: string, during?: DevicePath): string {
  const advice = state === "prepared"
    ? "An update is prepared: cancel it (liveupdate-agent cancel) before changing devices."
    : state === "updated"
    ? "The host has just been live-updated: finish the update (liveupdate-agent finish) first."
    : "Wait until the kernel is back in state normal.";
  const where = during ? ` (it changed while the agent was writing "${during}")` : "";
  return `The kernel is in state "${state}"${where}; a device's requested flag can only ` +
    `change in state "normal". ${advice}`;
}

/** The sentence for a lock wait interrupted `attempts` times. */
export function explainInterrupted(path: DevicePath, attempts: number): string {
  return `The kernel interrupted the agent's wait for the live-update lock while writing ` +
    `"${path}" (EAGAIN), ${attempts} times in a row. Retry when no other live-update ` +
    "operation is running.";
}

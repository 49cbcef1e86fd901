/**
 * Waiting for udev to settle: systemd-udevd keeps `<udev_db>/queue` while it has
 * events queued or running and removes it once every event is processed (what
 * `udevadm settle` waits for). At boot, `systemd-udev-trigger.service` only
 * queues the coldplug events; the database the selection reads is complete once
 * the queue file is gone.
 *
 * @module
 */

import type { Clock, KernelFs } from "../host/mod.ts";

/** How long the update flow waits for udev's queue before reading its database. */
export const UDEV_SETTLE_TIMEOUT_MS = 30_000;
const POLL_MS = 100;

/** The file udev keeps while events are pending. */
export function udevQueueFile(udevDb: string): string {
  return `${udevDb}/queue`;
}

/**
 * Waits until udev's event queue is empty (`<udevDb>/queue` does not exist), at
 * most `timeoutMs`. Returns true when it is (at once, when it already was), false
 * when the time ran out; the caller decides what a busy udev means. Needs read
 * access to `udevDb`.
 */
export async function waitForUdevQueue(
  fs: KernelFs,
  udevDb: string,
  clock: Clock,
  timeoutMs: number = UDEV_SETTLE_TIMEOUT_MS,
  signal?: AbortSignal,
): Promise<boolean> {
  const file = udevQueueFile(udevDb);
  const deadline = clock.monotonic() + timeoutMs;
  for (;;) {
    if (fs.kind(file) === "missing") return true;
    const left = deadline - clock.monotonic();
    if (left <= 0) return false;
    await clock.sleep(Math.min(POLL_MS, left), signal);
  }
}

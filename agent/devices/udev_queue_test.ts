import assert from "node:assert/strict";
import type { Clock } from "../host/mod.ts";
import { denoKernelFs } from "../host/deno_kernel_fs.ts";
import { udevQueueFile, waitForUdevQueue } from "./udev_queue.ts";

/** A clock whose sleeps advance time at once (and run `onSleep`). */
function steppingClock(onSleep: (now: number) => void): Clock & { slept: number } {
  let now = 0;
  const clock = {
    slept: 0,
    now: () => new Date(now),
    monotonic: () => now,
    sleep(ms: number) {
      now += ms;
      clock.slept += ms;
      onSleep(now);
      return Promise.resolve();
    },
  };
  return clock;
}

Deno.test("udev queue: no queue file means settled, without waiting", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-udev-queue-" });
  try {
    const clock = steppingClock(() => {});
    assert.equal(await waitForUdevQueue(denoKernelFs, dir, clock, 1000), true);
    assert.equal(clock.slept, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("udev queue: waits until udev removes the queue file, or times out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-udev-queue-" });
  try {
    const file = udevQueueFile(dir);
    Deno.writeTextFileSync(file, "");
    // udev finishes its events after 450 ms.
    const clock = steppingClock((now) => {
      if (now >= 450) Deno.removeSync(file);
    });
    assert.equal(await waitForUdevQueue(denoKernelFs, dir, clock, 5000), true);
    assert.equal(clock.slept, 500);
    // Still busy when the time runs out: false, after exactly the timeout.
    Deno.writeTextFileSync(file, "");
    const busy = steppingClock(() => {});
    assert.equal(await waitForUdevQueue(denoKernelFs, dir, busy, 1050), false);
    assert.equal(busy.slept, 1050);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Acceptance of the state watcher against the simulated kernel's real poll(2):
 * changes arrive through wake-ups; with wake-ups off (RFC v1's bug) they still
 * arrive through the bounded re-read; cancelling releases every descriptor and
 * pending FFI call (the test sanitizers are on).
 */
import assert from "node:assert/strict";
import { openLibc } from "../../agent/host/mod.ts";
import {
  KernelError,
  type StateObservation,
  StateWaitTimeoutError,
  waitForState,
} from "../../agent/kernel/mod.ts";
import { startSim } from "../sim/harness.ts";
import { DEV, kernelTree, openSimKernel } from "./_kernel_sim.ts";

async function openFds(): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir("/proc/self/fd")) count++;
  return count;
}

/** `promise` if it settles within `ms`, else "pending" (for proving that nothing arrives). */
async function settlesWithin<T>(promise: Promise<T>, ms: number): Promise<T | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"pending">((resolve) => timer = setTimeout(() => resolve("pending"), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("watch: every change arrives through a poll wake-up", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: kernelTree(), notify: true });
  // A one-hour interval: within this test only a wake-up can deliver a change.
  const { machine, devices } = await openSimKernel(sim, () => libc, 3_600_000);
  await devices.setRequested(DEV.vf, true);
  const controller = new AbortController();
  const watch = machine.watch({ signal: controller.signal });
  try {
    const next = async (): Promise<StateObservation> => {
      const result = await watch.next();
      assert.equal(result.done, false);
      return result.value as StateObservation;
    };
    assert.deepEqual(await next(), { state: "normal", via: "initial" });
    for (let round = 0; round < 25; round++) {
      await machine.prepare();
      assert.deepEqual(await next(), { state: "prepared", via: "notification" });
      await machine.cancel();
      assert.deepEqual(await next(), { state: "normal", via: "notification" });
    }
    // A change the kernel makes by itself: a REBOOT callback fails, the LUO cancels.
    await machine.prepare();
    assert.deepEqual(await next(), { state: "prepared", via: "notification" });
    await sim.failNextReboot("kvm", "EBUSY");
    assert.equal((await sim.kexec({ fallback: false })).reboot, "failed");
    assert.deepEqual(await next(), { state: "normal", via: "notification" });
  } finally {
    controller.abort();
    await watch.return(undefined);
  }
});

Deno.test("watch: with wake-ups off, changes still arrive through the interval re-read", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: kernelTree(), notify: false });
  const interval = 200;
  const { machine } = await openSimKernel(sim, () => libc, interval);
  const controller = new AbortController();
  const watch = machine.watch({ signal: controller.signal });
  try {
    assert.deepEqual((await watch.next()).value, { state: "normal", via: "initial" });
    for (const action of ["prepare", "cancel", "prepare", "cancel"] as const) {
      const started = performance.now();
      await machine[action]();
      const { value } = await watch.next();
      const elapsed = performance.now() - started;
      assert.deepEqual(value, {
        state: action === "prepare" ? "prepared" : "normal",
        via: "interval",
      });
      // Bounded by the interval; the margin absorbs a loaded machine (the
      // benchmark measures the real distribution).
      assert.ok(elapsed < interval + 5_000, `noticed after ${elapsed} ms`);
    }
    const events = (await sim.events()).filter((event) => event.type === "state");
    assert.ok(events.length >= 4 && events.every((event) => event.notified === false));
  } finally {
    controller.abort();
    await watch.return(undefined);
  }
});

Deno.test("watch: without wake-ups nothing arrives before the interval; abort ends it at once", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: kernelTree(), notify: false });
  const { machine } = await openSimKernel(sim, () => libc, 3_600_000);
  const before = await openFds();
  const controller = new AbortController();
  const watch = machine.watch({ signal: controller.signal });
  assert.deepEqual((await watch.next()).value, { state: "normal", via: "initial" });
  assert.equal(await openFds(), before + 2, "the state attribute and the eventfd");
  const pending = watch.next();
  await machine.prepare();
  assert.equal(await settlesWithin(pending, 300), "pending", "no wake-up, no change yet");
  controller.abort();
  assert.deepEqual(await settlesWithin(pending, 5_000), { value: undefined, done: true });
  assert.equal(await openFds(), before, "every descriptor is closed");
});

Deno.test("watch: cancelling a watcher waiting for a wake-up releases everything", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: kernelTree(), notify: true });
  const { machine } = await openSimKernel(sim, () => libc, 3_600_000);
  const before = await openFds();
  for (let round = 0; round < 20; round++) {
    const controller = new AbortController();
    const watch = machine.watch({ signal: controller.signal });
    await watch.next();
    const pending = watch.next();
    controller.abort();
    assert.deepEqual(await pending, { value: undefined, done: true });
  }
  assert.equal(await openFds(), before);
  // Several watchers at once are independent.
  const a = new AbortController();
  const b = new AbortController();
  const wa = machine.watch({ signal: a.signal });
  const wb = machine.watch({ signal: b.signal });
  await wa.next();
  await wb.next();
  await machine.prepare();
  assert.deepEqual((await wa.next()).value, { state: "prepared", via: "notification" });
  a.abort();
  assert.deepEqual((await wb.next()).value, { state: "prepared", via: "notification" });
  b.abort();
  assert.equal((await wa.next()).done, true);
  assert.equal((await wb.next()).done, true);
  assert.equal(await openFds(), before);
});

Deno.test("watch: a reboot under the watcher ends it with a KernelError, releasing all", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: kernelTree(), notify: true });
  const { machine } = await openSimKernel(sim, () => libc, 3_600_000);
  const before = await openFds();
  const watch = machine.watch();
  await watch.next();
  const pending = watch.next().then(() => assert.fail("expected an error"), (error) => error);
  await sim.reboot(); // the old boot's open files are dead (ENODEV)
  await assert.rejects(pending.then((error) => Promise.reject(error)), (error: unknown) => {
    assert.ok(error instanceof KernelError);
    assert.equal(error.errno, "ENODEV");
    assert.equal(error.file, sim.path("kernel/liveupdate/state"));
    assert.match(error.message, /was removed while the agent had it open \(ENODEV\)/);
    return true;
  });
  assert.equal(await openFds(), before);
  // A new watch on the new boot works.
  const fresh = machine.watch();
  assert.deepEqual((await fresh.next()).value, { state: "normal", via: "initial" });
  await fresh.return(undefined);
});

Deno.test("waitForState on the real backend: resolves on the change, times out otherwise", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: kernelTree(), notify: true });
  const { machine } = await openSimKernel(sim, () => libc, 3_600_000);
  const waiting = waitForState(machine, ["prepared"], { timeout: 60_000 });
  await machine.prepare();
  assert.equal(await waiting, "prepared");
  await assert.rejects(
    waitForState(machine, ["updated"], { timeout: 50 }),
    StateWaitTimeoutError,
  );
});

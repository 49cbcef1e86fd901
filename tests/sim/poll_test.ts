/**
 * Conformance: kernfs-like poll(2) on kernel/liveupdate/state through FFI — a
 * wake-up (POLLPRI|POLLERR) on every state change while notification is on,
 * none while it is off (RFC v1's bug), re-armed by a read.
 *
 * Blocking polls use long timeouts only as a failsafe against hangs; whether a
 * wake-up arrived is decided by the revents, never by elapsed time.
 */
import assert from "node:assert/strict";
import { openLibc } from "../../agent/host/libc.ts";
import { type Sim, startSim } from "./harness.ts";
import {
  DEV,
  goToState,
  PolledFile,
  POLLERR,
  POLLPRI,
  smallTree,
  state,
  write,
} from "./_conformance.ts";

const WOKEN = POLLPRI | POLLERR;
const FAILSAFE_MS = 30_000;

/**
 * Starts a blocking poll, waits until the simulator holds it, runs `action`,
 * and checks that the simulator woke it before `action` returned (a poll that
 * merely ran into its timeout would also see the change on its last look, so
 * the revents alone prove nothing). Returns the poll's revents.
 */
async function wakeUpBy(
  sim: Sim,
  file: PolledFile,
  action: () => Promise<unknown>,
): Promise<number> {
  const polling = file.poll(FAILSAFE_MS);
  await sim.pollersWaiting(1);
  const before = await sim.status();
  await action();
  const after = await sim.status();
  assert.equal(after.pollers, 0, "the blocked poll was woken");
  assert.ok(after.wakeups > before.wakeups, "a wake-up was delivered");
  return await polling;
}

Deno.test("poll: a new open file reports a change until its first read", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: smallTree() });
  using file = new PolledFile(libc, sim.path("kernel/liveupdate/state"));
  assert.equal(file.pollNow() & WOKEN, WOKEN);
  assert.equal(file.read(), "normal\n");
  assert.equal(file.pollNow(), 0);
});

Deno.test("poll: every state change wakes a waiting poller", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: smallTree() });
  const prepare = sim.path("kernel/liveupdate/prepare");
  const finish = sim.path("kernel/liveupdate/finish");
  await write(sim.device(DEV.a, "liveupdate/requested"), "1");

  const transitions: [string, (sim: Sim) => Promise<unknown>, string][] = [
    ["prepare", () => write(prepare, "1"), "prepared\n"],
    ["cancel", () => write(prepare, "0"), "normal\n"],
    ["prepare again", () => write(prepare, "1"), "prepared\n"],
    ["REBOOT failure", async (sim) => {
      await sim.failNextReboot("kvm", "EBUSY");
      return sim.kexec({ fallback: false });
    }, "normal\n"],
  ];
  {
    using file = new PolledFile(libc, sim.path("kernel/liveupdate/state"));
    file.read();
    for (const [what, action, after] of transitions) {
      const revents = await wakeUpBy(sim, file, () => action(sim));
      assert.equal(revents & WOKEN, WOKEN, `${what} woke the poller`);
      assert.equal(file.read(), after, what);
      assert.equal(file.pollNow(), 0, `${what}: the read re-armed poll`);
    }
  }
  // finish (updated → normal), in the next boot.
  await goToState(sim, "updated");
  using file = new PolledFile(libc, sim.path("kernel/liveupdate/state"));
  assert.equal(file.read(), "updated\n");
  const revents = await wakeUpBy(sim, file, () => write(finish, "1"));
  assert.equal(revents & WOKEN, WOKEN, "finish woke the poller");
  assert.equal(file.read(), "normal\n");
});

Deno.test("poll: a write that changes no state wakes nobody", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: smallTree() });
  using file = new PolledFile(libc, sim.path("kernel/liveupdate/state"));
  file.read();
  await sim.failNextPrepare("iommu", "EBUSY");
  assert.equal(await write(sim.path("kernel/liveupdate/prepare"), "1"), "EBUSY");
  assert.equal(await write(sim.path("kernel/liveupdate/prepare"), "0"), "EINVAL");
  assert.equal(await write(sim.path("kernel/liveupdate/finish"), "1"), "EINVAL");
  assert.equal(file.pollNow(), 0);
  assert.equal(file.read(), "normal\n");
});

Deno.test("poll: with notification off (RFC v1) a state change never wakes a poller", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: smallTree(), notify: false });
  const prepare = sim.path("kernel/liveupdate/prepare");
  using file = new PolledFile(libc, sim.path("kernel/liveupdate/state"));
  file.read();
  const polling = file.poll(300);
  await sim.pollersWaiting(1);
  assert.equal(await write(prepare, "1"), "ok");
  assert.equal((await sim.status()).pollers, 1, "the poll is still blocked");
  assert.equal(await polling, 0, "and ran into its timeout without seeing a change");
  assert.equal(file.pollNow(), 0, "and a new poll sees no change either");
  assert.equal(file.read(), "prepared\n", "while the contents did change");
  assert.equal(await write(prepare, "0"), "ok");
  assert.equal(file.pollNow(), 0);
  assert.equal(await state(sim), "normal");

  // Switched on at run time, the next change wakes the poller.
  await sim.setNotify(true);
  const revents = await wakeUpBy(sim, file, () => write(prepare, "1"));
  assert.equal(revents & WOKEN, WOKEN);
  await sim.setNotify(false);
  file.read();
  assert.equal(await write(prepare, "0"), "ok");
  assert.equal(file.pollNow(), 0);
  const states = (await sim.events()).filter((e) => e.type === "state").map((e) => e.notified);
  assert.deepEqual(states, [false, false, true, false]);
});

Deno.test("poll: device attributes never notify (dev_liveupdate calls no sysfs_notify)", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: smallTree() });
  await write(sim.device(DEV.a, "liveupdate/requested"), "1");
  using preserved = new PolledFile(libc, sim.device(DEV.a, "liveupdate/preserved"));
  using requested = new PolledFile(libc, sim.device(DEV.b, "liveupdate/requested"));
  assert.equal(preserved.read(), "0\n");
  assert.equal(requested.read(), "0\n");
  await write(sim.device(DEV.b, "liveupdate/requested"), "1");
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  assert.equal(preserved.read(), "1\n");
  assert.equal(requested.read(), "1\n");
  await write(sim.path("kernel/liveupdate/prepare"), "0");
  assert.equal(preserved.pollNow(), 0);
  assert.equal(requested.pollNow(), 0);
});

Deno.test("poll: files of the previous boot are dead after a kexec; their pollers wake", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: smallTree() });
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  using file = new PolledFile(libc, sim.path("kernel/liveupdate/state"));
  using device = new PolledFile(libc, sim.device(DEV.a, "liveupdate/requested"));
  assert.equal(file.read(), "prepared\n");
  device.read();
  const revents = await wakeUpBy(sim, file, () => sim.kexec());
  assert.equal(revents & WOKEN, WOKEN);
  assert.equal(file.readErrno(), "ENODEV");
  assert.equal(device.readErrno(), "ENODEV");
  assert.equal(device.pollNow() & WOKEN, WOKEN);
  using fresh = new PolledFile(libc, sim.path("kernel/liveupdate/state"));
  assert.equal(fresh.read(), "updated\n");
});

Deno.test("poll: a removed device's open files fail with ENODEV", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: smallTree() });
  using file = new PolledFile(libc, sim.device(DEV.eth0, "liveupdate/requested"));
  assert.equal(file.read(), "0\n");
  assert.equal(await sim.removeDevice(DEV.a), 2);
  assert.equal(file.readErrno(), "ENODEV");
  assert.equal(file.pollNow() & WOKEN, WOKEN);
});

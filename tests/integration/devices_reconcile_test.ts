/**
 * Reconciling `requested` against the simulated kernel with the agent's real RFC
 * v1 backend: set, clear its own, leave others', verify, undo; refusals explained
 * (an ancestor without support, a vanished device, a state other than normal,
 * EAGAIN); and what the devices report says after a live update.
 */
import assert from "node:assert/strict";
import {
  buildDevicesReport,
  DeviceRefusedError,
  DeviceStateError,
  reconcileDevices,
  undoReconcile,
} from "../../agent/devices/mod.ts";
import { generateTree } from "../sim/tree.ts";
import { startRig } from "./_devices_sim.ts";

const PORT = "pci0000:00/0000:00:01.0";
const PORT2 = "pci0000:00/0000:00:02.0";

Deno.test("reconcile: set, verify, second run idle, clear own, leave foreign, undo", async () => {
  await using rig = await startRig(generateTree({ devices: 200, marked: 6 }));
  const selection = rig.select();
  const paths = selection.devices.map((device) => device.path);
  const first = await reconcileDevices({ kernel: rig.kernel, selection, store: rig.store });
  assert.deepEqual(first.requested, paths);
  assert.deepEqual(await rig.requested(paths), paths);
  const writes = (await rig.sim.events()).filter((event) => event.type === "write").length;

  const idle = await reconcileDevices({
    kernel: rig.kernel,
    selection: rig.select(),
    store: rig.store,
  });
  assert.equal(idle.alreadyRequested.length, 6);
  assert.equal(
    (await rig.sim.events()).filter((event) => event.type === "write").length,
    writes,
    "a second run writes nothing",
  );

  // The rule for the first device is removed; someone requests an untagged device by hand.
  await Deno.remove(`${rig.udev}/tags/liveupdate/${selection.devices[0]!.id}`);
  const byHand = `${PORT}/0000:01:00.1`;
  await Deno.writeTextFile(rig.sim.device(byHand, "liveupdate/requested"), "1");
  const second = await reconcileDevices({
    kernel: rig.kernel,
    selection: rig.select(),
    store: rig.store,
    others: [byHand],
  });
  assert.deepEqual(second.cleared, [paths[0]]);
  assert.deepEqual(second.foreign, [{ path: byHand, cleared: false }]);
  assert.equal(await rig.flag(paths[0]!), false);
  assert.equal(await rig.flag(byHand), true, "a foreign request is left alone");

  await undoReconcile({ kernel: rig.kernel, store: rig.store, undo: second.undo });
  assert.equal(await rig.flag(paths[0]!), true, "undo restores the cleared request");
  assert.ok((await rig.store.load()).has(paths[0]!));
});

Deno.test("reconcile: EINVAL from an unsupported root port is explained and undone", async () => {
  await using rig = await startRig(
    generateTree({ devices: 700, marked: 12, unsupportedPortEvery: 2 }),
  );
  const selection = rig.select();
  const below = selection.devices.filter((device) => device.path.startsWith(`${PORT2}/`));
  assert.ok(below.length >= 2);
  const error = await reconcileDevices({
    kernel: rig.kernel,
    selection,
    store: rig.store,
    identify: (path) => rig.identify(path),
  }).then(() => assert.fail("expected a refusal"), (error) => error);
  assert.ok(error instanceof DeviceRefusedError, String(error));
  assert.equal(error.restored, true);
  assert.deepEqual(await rig.requested(selection.devices.map((d) => d.path)), []);
  assert.deepEqual(error.refusals.map((r) => r.path).sort(), below.map((d) => d.path));
  const refusal = error.refusals[0]!;
  assert.equal(refusal.kind, "unsupported");
  assert.ok(
    refusal.message.includes(
      `Most likely "${PORT2}" (driver pcieport, bus pci; that pair works for other devices here) ` +
        `(it is on the way of all ${below.length} devices refused below it).`,
    ),
    refusal.message,
  );
  assert.deepEqual([...(await rig.store.load()).keys()], [], "the record is back as it was");
});

Deno.test("reconcile: a device that vanished after selection is a refusal; nothing is written", async () => {
  await using rig = await startRig(generateTree({ devices: 60, marked: 5 }));
  const selection = rig.select();
  await rig.sim.removeDevice(selection.devices[2]!.path);
  const error = await reconcileDevices({ kernel: rig.kernel, selection, store: rig.store })
    .then(() => assert.fail("expected a refusal"), (error) => error);
  assert.ok(error instanceof DeviceRefusedError);
  assert.equal(error.refusals[0]!.kind, "vanished");
  assert.match(error.refusals[0]!.message, /vanished \(ENOENT\)/);
  assert.equal((await rig.sim.events()).filter((event) => event.type === "write").length, 0);
});

Deno.test("reconcile: a device that vanishes between reading and writing its flag is a refusal; the run is undone", async () => {
  await using rig = await startRig(generateTree({ devices: 60, marked: 5 }));
  const selection = rig.select();
  const victim = selection.devices[2]!.path;
  // The record is written after the flags were read (files held open) and before any
  // write: the device is hot-unplugged right then.
  const store = {
    where: rig.store.where,
    load: () => rig.store.load(),
    save: async (owned: Parameters<typeof rig.store.save>[0]) => {
      if (owned.size > 0 && !removed) {
        removed = true;
        await rig.sim.removeDevice(victim);
      }
      await rig.store.save(owned);
    },
  };
  let removed = false;
  const error = await reconcileDevices({ kernel: rig.kernel, selection, store })
    .then(() => assert.fail("expected a refusal"), (error) => error);
  assert.ok(error instanceof DeviceRefusedError);
  assert.equal(error.restored, true);
  assert.deepEqual(error.refusals.map((refusal) => [refusal.path, refusal.kind]), [
    [victim, "vanished"],
  ]);
  assert.match(error.refusals[0]!.message, /vanished \(ENOENT\)/);
  const others = selection.devices.map((device) => device.path).filter((path) => path !== victim);
  assert.deepEqual(await rig.requested(others), [], "every other request was undone");
  assert.deepEqual([...(await rig.store.load()).keys()], [], "the record is back as it was");
});

Deno.test("reconcile: outside state normal nothing is written; EAGAIN is retried", async () => {
  await using rig = await startRig(generateTree({ devices: 60, marked: 5 }));
  await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "1");
  await assert.rejects(
    () => reconcileDevices({ kernel: rig.kernel, selection: rig.select(), store: rig.store }),
    (error) => {
      assert.ok(error instanceof DeviceStateError);
      assert.match(error.message, /state "prepared".*liveupdate-agent cancel/);
      return true;
    },
  );
  await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "0");
  await rig.sim.eagainNext(2);
  const result = await reconcileDevices({
    kernel: rig.kernel,
    selection: rig.select(),
    store: rig.store,
  });
  assert.equal(result.requested.length, 5);
  assert.equal((await rig.sim.status()).eagain, 0, "both interruptions were met and retried");
});

Deno.test("after a live update: preserved devices, and which unit should reclaim each", async () => {
  await using rig = await startRig(generateTree({ devices: 60, marked: 3 }));
  const selection = rig.select();
  await reconcileDevices({ kernel: rig.kernel, selection, store: rig.store });
  await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "1");
  const reboot = await rig.sim.kexec();
  assert.equal(reboot.reboot, "live");
  await rig.sim.setReclaimed(selection.devices[0]!.path);
  const report = await buildDevicesReport({
    selection: rig.select(),
    kernel: rig.kernel,
    owned: await rig.store.load(),
    record: rig.store.where,
  });
  assert.deepEqual(report.kernel, { available: true, state: "updated" });
  // Three selected devices plus their port and root complex were preserved.
  assert.equal(report.summary.preserved, 5);
  const pending = report.pendingReclaim.map((view) => [view.path, view.unit ?? null]);
  assert.deepEqual(pending.slice(0, 2), [
    [selection.devices[1]!.path, "vm-1.service"],
    [selection.devices[2]!.path, "vm-2.service"],
  ]);
});

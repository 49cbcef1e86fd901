import assert from "node:assert/strict";
import { generateTree, type SimTree } from "../../tests/sim/tree.ts";
import type { DeviceKernel } from "../kernel/kernel.ts";
import { denoKernelFs } from "../host/deno_kernel_fs.ts";
import { DeviceRefusedError, DeviceStateError, SelectionError } from "./devices_error.ts";
import { memoryOwnershipStore, type Owned } from "./ownership.ts";
import { reconcileDevices, undoReconcile } from "./reconcile.ts";
import { selectDevices, type Selection } from "./selection.ts";
import { SysfsResolver } from "./sysfs_resolver.ts";
import { type Fixture, makeFixture } from "./_test_fixture.ts";
import { TreeKernel, withBulk } from "./_test_kernel.ts";

const PORT = "pci0000:00/0000:00:01.0";
const PORT2 = "pci0000:00/0000:00:02.0";

function select(fixture: Fixture, match?: Record<string, string>): Selection {
  return selectDevices({
    fs: denoKernelFs,
    udevDb: fixture.udev,
    sysfs: fixture.sysfs,
    tag: "liveupdate",
    ...(match ? { match } : {}),
  });
}

/** Untags a device in the udev database (as when its rule is removed and udev re-runs). */
async function untag(fixture: Fixture, id: string): Promise<void> {
  await Deno.remove(`${fixture.udev}/tags/liveupdate/${id}`);
}

async function setup(tree: SimTree = generateTree({ devices: 30, marked: 4 })) {
  const fixture = await makeFixture(tree);
  return { fixture, kernel: new TreeKernel(tree), store: memoryOwnershipStore() };
}

/** Both ways of driving the kernel: one call per device, and the bulk fast path. */
const KERNELS: [string, (kernel: TreeKernel) => DeviceKernel][] = [
  ["per-device", (kernel) => kernel],
  ["bulk", (kernel) => withBulk(kernel)],
  ["bulk, unreliable errno", (kernel) => withBulk(kernel, "EAGAIN")],
  ["bulk, files held", (kernel) => withBulk(kernel, undefined, true)],
  ["bulk, files held, unreliable errno", (kernel) => withBulk(kernel, "EAGAIN", true)],
];

Deno.test("reconcile: requests the selected devices, records them, and a second run changes nothing", async () => {
  for (const [name, drive] of KERNELS) {
    const { fixture, kernel, store } = await setup();
    await using _ = fixture;
    const selection = select(fixture);
    const first = await reconcileDevices({ kernel: drive(kernel), selection, store });
    assert.deepEqual(first.requested, selection.devices.map((d) => d.path), name);
    assert.deepEqual(kernel.requested(), first.requested, name);
    assert.equal(first.undo.changes.length, 4, name);
    assert.deepEqual(first.undo.changes[0], {
      path: `${PORT}/0000:01:00.0`,
      id: "+pci:0000:01:00.0",
      from: false,
      to: true,
      reason: "selected",
    });
    assert.deepEqual(first.undo.ownedBefore, []);
    assert.equal(store.current().get(`${PORT}/0000:01:00.0`)?.unit, "vm-0.service", name);
    assert.equal(store.current().size, 4);

    const writes = kernel.writes.length;
    const second = await reconcileDevices({
      kernel: drive(kernel),
      selection: select(fixture),
      store,
    });
    assert.deepEqual(second.requested, [], name);
    assert.equal(second.alreadyRequested.length, 4, name);
    assert.equal(second.undo.changes.length, 0);
    assert.equal(kernel.writes.length, writes, `${name}: a second run writes nothing`);
  }
});

Deno.test("reconcile: clears only its own requests; foreign ones are conflicts unless clearForeign", async () => {
  for (const [name, drive] of KERNELS) {
    const { fixture, kernel, store } = await setup();
    await using _ = fixture;
    await reconcileDevices({ kernel: drive(kernel), selection: select(fixture), store });
    // Someone else requested a tagged device that the filter now passes over, and an
    // operator requested 0000:01:00.1 (untagged) by hand.
    await untag(fixture, "+pci:0000:01:00.4");
    const own = `${PORT}/0000:01:00.4`;
    const byHand = `${PORT}/0000:01:00.1`;
    kernel.write(byHand, true);
    const result = await reconcileDevices({
      kernel: drive(kernel),
      selection: select(fixture),
      store,
      others: [byHand],
    });
    assert.deepEqual(result.cleared, [own], name);
    assert.deepEqual(result.foreign, [{ path: byHand, cleared: false }], name);
    assert.ok(!store.current().has(own), name);
    assert.ok(kernel.flags.get(byHand)!.requested, `${name}: a foreign request stays`);
    assert.deepEqual(result.undo.changes.map((c) => [c.path, c.reason]), [[own, "deselected"]]);

    const cleared = await reconcileDevices({
      kernel: drive(kernel),
      selection: select(fixture),
      store,
      others: [byHand],
      clearForeign: true,
    });
    assert.deepEqual(cleared.foreign, [{ path: byHand, cleared: true }], name);
    assert.ok(!kernel.flags.get(byHand)!.requested, name);
    // Undo restores exactly what was there, someone else's request included.
    await undoReconcile({ kernel: drive(kernel), store, undo: cleared.undo });
    assert.ok(kernel.flags.get(byHand)!.requested, `${name}: undo restores the foreign request`);
  }
});

Deno.test("reconcile: a selected device someone else requested is used but never cleared", async () => {
  const { fixture, kernel, store } = await setup();
  await using _ = fixture;
  const theirs = `${PORT}/0000:01:00.0`;
  kernel.write(theirs, true);
  const first = await reconcileDevices({ kernel, selection: select(fixture), store });
  assert.deepEqual(first.alreadyRequested, [theirs]);
  assert.ok(!store.current().has(theirs));
  await untag(fixture, "+pci:0000:01:00.0");
  const second = await reconcileDevices({ kernel, selection: select(fixture), store });
  assert.deepEqual(second.cleared, []);
  assert.ok(kernel.flags.get(theirs)!.requested);
});

Deno.test("reconcile: tagged devices passed over are checked for foreign requests", async () => {
  const { fixture, kernel, store } = await setup();
  await using _ = fixture;
  kernel.write(`${PORT}/0000:01:00.0`, true);
  const result = await reconcileDevices({
    kernel,
    selection: select(fixture, { DRIVER: "nvme" }),
    store,
  });
  assert.deepEqual(result.foreign, [{
    path: `${PORT}/0000:01:00.0`,
    id: "+pci:0000:01:00.0",
    cleared: false,
  }]);
});

Deno.test("reconcile: EINVAL from an unsupported ancestor undoes everything and names it", async () => {
  // Three root ports; the second one's bus has no live-update support.
  const tree = generateTree({ devices: 700, marked: 12, unsupportedPortEvery: 2 });
  await using fixture = await makeFixture(tree);
  for (const [name, drive] of KERNELS) {
    const kernel = new TreeKernel(tree);
    const store = memoryOwnershipStore();
    const before: Owned = new Map([["pci0000:00/0000:00:03.0/0000:03:00.0", { id: "+pci:x" }]]);
    await store.save(before);
    const resolver = new SysfsResolver(denoKernelFs, fixture.sysfs);
    const selection = select(fixture);
    const below = selection.devices.filter((d) => d.path.startsWith(`${PORT2}/`));
    assert.ok(below.length >= 2 && below.length < selection.devices.length, name);
    const error = await reconcileDevices({
      kernel: drive(kernel),
      selection,
      store,
      identify: (path) => resolver.identity(path),
    }).then(() => assert.fail("expected a refusal"), (error) => error);
    assert.ok(error instanceof DeviceRefusedError, String(error));
    assert.equal(error.restored, true, name);
    assert.deepEqual(kernel.requested(), [], `${name}: every change was undone`);
    assert.deepEqual(store.current(), before, `${name}: the record is as before`);
    assert.deepEqual(error.refusals.map((r) => r.path).sort(), below.map((d) => d.path), name);
    const refusal = error.refusals[0]!;
    assert.equal(refusal.kind, "unsupported", name);
    assert.equal(refusal.errno, "EINVAL", name);
    // The root complex is proven good by the accepted devices; the port is not.
    assert.deepEqual(refusal.suspects, [
      { path: refusal.path, driver: "vfio-pci", bus: "pci", pairWorksElsewhere: true },
      { path: PORT2, driver: "pcieport", bus: "pci", pairWorksElsewhere: true },
    ]);
    assert.match(
      refusal.message,
      /The kernel refused to preserve ".*" \(\+pci:0000:02:..\..\) \(EINVAL\)/,
    );
    assert.match(
      refusal.message,
      /Devices on the way not known to support it: .*"pci0000:00\/0000:00:02.0" \(driver pcieport, bus pci/,
    );
    assert.ok(
      refusal.message.includes(
        'Most likely "pci0000:00/0000:00:02.0" (driver pcieport, bus pci; that pair works for ' +
          `other devices here) (it is on the way of all ${below.length} devices refused below it).`,
      ),
      refusal.message,
    );
    assert.match(error.message, /\(and \d+ more problems\) Nothing was left changed\.$/);
  }
});

Deno.test("reconcile: a device that vanishes while being requested is a refusal; the rest is undone", async () => {
  for (const [name, drive] of KERNELS) {
    const { fixture, kernel, store } = await setup();
    await using _ = fixture;
    const gone = `${PORT}/0000:01:01.3`;
    kernel.beforeChange = (path) => {
      if (path === `${PORT}/0000:01:00.4`) kernel.vanished.add(gone);
    };
    const error = await reconcileDevices({
      kernel: drive(kernel),
      selection: select(fixture),
      store,
    })
      .then(() => assert.fail("expected a refusal"), (error) => error);
    assert.ok(error instanceof DeviceRefusedError, name);
    assert.deepEqual(error.refusals.map((r) => [r.path, r.kind, r.errno]), [[
      gone,
      "vanished",
      "ENOENT",
    ]]);
    assert.match(error.refusals[0]!.message, /vanished \(ENOENT\).*udevadm settle/);
    assert.deepEqual(kernel.requested(), [], name);
  }
});

Deno.test("reconcile: outside state normal, nothing is written (and no change is fine)", async () => {
  const { fixture, kernel, store } = await setup();
  await using _ = fixture;
  kernel.luoState = "prepared";
  const error = await reconcileDevices({ kernel, selection: select(fixture), store })
    .then(() => assert.fail("expected a refusal"), (error) => error);
  assert.ok(error instanceof DeviceStateError);
  assert.equal(error.state, "prepared");
  assert.match(
    error.message,
    /state "prepared".*only change in state "normal".*liveupdate-agent cancel/,
  );
  assert.equal(kernel.writes.length, 0);
  assert.equal(store.saves, 0);

  kernel.luoState = "normal";
  await reconcileDevices({ kernel, selection: select(fixture), store });
  kernel.luoState = "updated";
  const same = await reconcileDevices({ kernel, selection: select(fixture), store });
  assert.equal(same.state, "updated");
  assert.equal(same.alreadyRequested.length, 4);
});

Deno.test("reconcile: the state changing mid-run stops it; restoring then fails and says so", async () => {
  for (const [name, drive] of KERNELS) {
    const { fixture, kernel, store } = await setup();
    await using _ = fixture;
    kernel.beforeChange = (path) => {
      if (path === `${PORT}/0000:01:01.3`) kernel.luoState = "prepared";
    };
    const error = await reconcileDevices({
      kernel: drive(kernel),
      selection: select(fixture),
      store,
    })
      .then(() => assert.fail("expected a refusal"), (error) => error);
    assert.ok(error instanceof DeviceRefusedError, name);
    assert.ok(error.refusals.every((r) => r.kind === "state"), name);
    assert.match(
      error.refusals[0]!.message,
      /state "prepared" \(it changed while the agent was writing/,
    );
    assert.equal(error.restored, false, name);
    assert.match(error.message, /Restoring the earlier values failed too/);
  }
});

Deno.test("reconcile: EAGAIN is retried a bounded number of times", async () => {
  for (const [name, drive] of KERNELS) {
    const { fixture, kernel, store } = await setup();
    await using _ = fixture;
    kernel.writeFaults.set(`${PORT}/0000:01:00.0`, ["EAGAIN", "EAGAIN"]);
    const result = await reconcileDevices({
      kernel: drive(kernel),
      selection: select(fixture),
      store,
    });
    assert.equal(result.requested.length, 4, name);

    const again = await setup();
    await using __ = again.fixture;
    again.kernel.writeFaults.set(`${PORT}/0000:01:00.0`, ["EAGAIN", "EAGAIN", "EAGAIN", "EAGAIN"]);
    const error = await reconcileDevices({
      kernel: drive(again.kernel),
      selection: select(again.fixture),
      store: again.store,
      attempts: 3,
    }).then(() => assert.fail("expected a refusal"), (error) => error);
    assert.ok(error instanceof DeviceRefusedError, name);
    assert.equal(error.refusals[0]!.kind, "interrupted", name);
    assert.match(error.refusals[0]!.message, /\(EAGAIN\), 3 times in a row/);
    assert.deepEqual(again.kernel.requested(), [], name);
  }
});

Deno.test("reconcile: a flag that does not read back as written is a refusal", async () => {
  for (const [name, drive] of KERNELS) {
    const { fixture, kernel, store } = await setup();
    await using _ = fixture;
    kernel.deaf.add(`${PORT}/0000:01:00.4`);
    const error = await reconcileDevices({
      kernel: drive(kernel),
      selection: select(fixture),
      store,
    })
      .then(() => assert.fail("expected a refusal"), (error) => error);
    assert.ok(error instanceof DeviceRefusedError, name);
    assert.deepEqual(error.refusals.map((r) => r.kind), ["mismatch"], name);
    assert.match(error.refusals[0]!.message, /After writing 1 .* reads back 0/, name);
    assert.deepEqual(kernel.requested(), [], name);
  }
});

Deno.test("reconcile: an unreadable flag stops the run before anything is written", async () => {
  const { fixture, kernel, store } = await setup();
  await using _ = fixture;
  kernel.readFaults.set(`${PORT}/0000:01:00.4`, "EIO");
  const error = await reconcileDevices({ kernel, selection: select(fixture), store })
    .then(() => assert.fail("expected a refusal"), (error) => error);
  assert.ok(error instanceof DeviceRefusedError);
  assert.equal(error.refusals[0]!.errno, "EIO");
  assert.equal(kernel.writes.length, 0);
});

Deno.test("reconcile: an unusable selection writes nothing", async () => {
  const { fixture, kernel, store } = await setup();
  await using _ = fixture;
  await Deno.writeTextFile(`${fixture.udev}/data/+pci:0000:01:00.0`, "garbage\n");
  await assert.rejects(
    () => reconcileDevices({ kernel, selection: select(fixture), store }),
    SelectionError,
  );
  assert.equal(kernel.writes.length, 0);
  assert.equal(store.saves, 0);
});

Deno.test("reconcile: a dry run reads and plans but writes nothing", async () => {
  const { fixture, kernel, store } = await setup();
  await using _ = fixture;
  const plan = await reconcileDevices({ kernel, selection: select(fixture), store, dryRun: true });
  assert.equal(plan.dryRun, true);
  assert.equal(plan.requested.length, 4);
  assert.equal(kernel.writes.length, 0);
  assert.equal(store.saves, 0);
});

Deno.test("reconcile: the record lists the devices before the kernel is touched", async () => {
  const { fixture, kernel } = await setup();
  await using _ = fixture;
  const seen: [number, number][] = [];
  const store = memoryOwnershipStore();
  const save = store.save.bind(store);
  store.save = (owned: Owned) => {
    seen.push([owned.size, kernel.writes.length]);
    return save(owned);
  };
  await reconcileDevices({ kernel, selection: select(fixture), store });
  // One save, with all four devices, before the first write.
  assert.deepEqual(seen, [[4, 0]]);
});

Deno.test("reconcile: undo restores exactly the previous values and record", async () => {
  for (const [name, drive] of KERNELS) {
    const { fixture, kernel, store } = await setup();
    await using _ = fixture;
    await reconcileDevices({ kernel: drive(kernel), selection: select(fixture), store });
    const snapshot = new Map(store.current());
    await untag(fixture, "+pci:0000:01:00.0");
    const result = await reconcileDevices({
      kernel: drive(kernel),
      selection: select(fixture),
      store,
    });
    assert.deepEqual(result.cleared, [`${PORT}/0000:01:00.0`]);
    await undoReconcile({ kernel: drive(kernel), store, undo: result.undo });
    assert.deepEqual(kernel.requested().length, 4, name);
    assert.deepEqual([...store.current().keys()].sort(), [...snapshot.keys()].sort(), name);
  }
});

Deno.test("reconcile: devices in the record that vanished are forgotten", async () => {
  const { fixture, kernel, store } = await setup();
  await using _ = fixture;
  await reconcileDevices({ kernel, selection: select(fixture), store });
  const gone = `${PORT}/0000:01:00.0`;
  await untag(fixture, "+pci:0000:01:00.0");
  kernel.vanished.add(gone);
  const result = await reconcileDevices({ kernel, selection: select(fixture), store });
  assert.deepEqual(result.forgotten, [gone]);
  assert.ok(!store.current().has(gone));
});

Deno.test("reconcile: files held open between reading and writing are closed, whatever happens", async () => {
  const tree = generateTree({ devices: 30, marked: 4, unsupportedPortEvery: 0 });
  const cases: [string, (kernel: TreeKernel) => void, boolean, boolean][] = [
    ["success", () => {}, false, true],
    [
      "a refused write",
      (kernel) => kernel.writeFaults.set(`${PORT}/0000:01:01.3`, ["EIO", "EIO"]),
      false,
      false,
    ],
    [
      "an unreadable flag",
      (kernel) => kernel.readFaults.set(`${PORT}/0000:01:00.4`, "EIO"),
      false,
      false,
    ],
    ["outside state normal", (kernel) => (kernel.luoState = "prepared"), false, false],
    ["a dry run", () => {}, true, true],
  ];
  for (const [name, arrange, dryRun, succeeds] of cases) {
    const { fixture, kernel, store } = await setup(tree);
    await using _ = fixture;
    arrange(kernel);
    const bulk = withBulk(kernel, undefined, true);
    const run = reconcileDevices({ kernel: bulk, selection: select(fixture), store, dryRun });
    if (succeeds) await run;
    else await assert.rejects(run, Error, name);
    assert.equal(bulk.held, 0, `${name}: every held file closed`);
    if (name === "success") {
      assert.equal(bulk.heldWrites, 4, "the writes went through the held files");
      assert.deepEqual(kernel.requested().length, 4);
    }
  }
});

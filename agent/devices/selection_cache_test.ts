import assert from "node:assert/strict";
import { generateTree, type SimTree, udevDataText } from "../../tests/sim/tree.ts";
import type { KernelFs } from "../host/mod.ts";
import { DeviceRefusedError } from "./devices_error.ts";
import { newIdentity } from "../host/mod.ts";
import { memoryOwnershipStore } from "./ownership.ts";
import { reconcileDevices } from "./reconcile.ts";
import { selectDevicesCached } from "./apply.ts";
import { selectDevices, type Selection, selectionCacheKey } from "./selection.ts";
import { type CacheClock, fileSelectionCacheStore, SelectionCache } from "./selection_cache.ts";
import { countingFs, deviceAt, type Fixture, makeFixture, withEachFs } from "./_test_fixture.ts";
import { TreeKernel } from "./_test_kernel.ts";

const PORT = "pci0000:00/0000:00:01.0";
const FIRST = `${PORT}/0000:01:00.0`;
const SECOND = `${PORT}/0000:01:00.4`;

/** A run that starts well after the fixture's files were written (they count as settled). */
const LATER: CacheClock = { startedMs: Date.now() + 60_000 };

function options(fixture: Fixture, fs: KernelFs, tag = "liveupdate") {
  return { fs, udevDb: fixture.udev, sysfs: fixture.sysfs, tag };
}

/** One run with the cache `text` left by the previous one; returns the selection, the cache and its next text. */
function run(
  fixture: Fixture,
  fs: KernelFs,
  text?: string,
  clock: CacheClock = LATER,
  tag?: string,
) {
  const key = selectionCacheKey(options(fixture, fs, tag));
  const parsed = text === undefined ? undefined : SelectionCache.parse(text, key, clock);
  if (parsed !== undefined && "problem" in parsed) throw new Error(parsed.problem);
  const cache = parsed ?? new SelectionCache(key, clock);
  const selection = selectDevices({ ...options(fixture, fs, tag), cache });
  return { selection, cache, text: cache.toText() };
}

/** What a selection says, without the cache's help (for comparing). */
function plain(fixture: Fixture, fs: KernelFs): Selection {
  return selectDevices(options(fixture, fs));
}

/** Replaces a data file the way systemd-udevd does: a new file renamed over the old one. */
async function udevWrite(fixture: Fixture, id: string, text: string): Promise<void> {
  const temp = `${fixture.udev}/data/.#${id}tmp`;
  await Deno.writeTextFile(temp, text);
  await Deno.rename(temp, `${fixture.udev}/data/${id}`);
}

/** 30 devices, 4 tagged; the second tagged one's tag is sticky only (passed over). */
async function fixtureWithPassedOver(): Promise<{ fixture: Fixture; tree: SimTree }> {
  const tree = generateTree({ devices: 30, marked: 4 });
  const fixture = await makeFixture(tree);
  const device = deviceAt(tree, SECOND);
  await udevWrite(
    fixture,
    "+pci:0000:01:00.4",
    udevDataText(device).replace("Q:liveupdate\n", ""),
  );
  return { fixture, tree };
}

Deno.test("selection cache: a second run takes every outcome from it and reads no data file", async () => {
  const { fixture } = await fixtureWithPassedOver();
  await using _ = fixture;
  await withEachFs((inner, name) => {
    const first = run(fixture, inner);
    assert.equal(first.cache.hits, 0, name);
    assert.equal(first.cache.misses, 4, name);
    assert.deepEqual(first.selection, plain(fixture, inner), name);
    assert.equal(first.selection.passedOver.length, 1, name);

    const fs = countingFs(inner);
    const second = run(fixture, fs, first.text);
    assert.equal(second.cache.hits, 4, name);
    assert.equal(second.cache.misses, 0, name);
    assert.deepEqual(second.selection, plain(fixture, inner), name);
    assert.deepEqual(fs.reads.filter((path) => path.includes("/data/")), [], name);
    assert.equal(second.cache.changed, false, `${name}: nothing to save`);
    assert.equal(second.text, first.text, name);
    // Written piecewise, the pieces make the same document.
    assert.equal([...first.cache.toChunks(1)].join(""), first.text, name);
    assert.deepEqual(JSON.parse(first.text).selection.devices, first.selection.devices, name);
  });
});

Deno.test("selection cache: data files udev replaced, changed, removed or added are read afresh", async () => {
  const { fixture, tree } = await fixtureWithPassedOver();
  await using _ = fixture;
  await withEachFs(async (fs, name) => {
    const first = run(fixture, fs);
    // The rule no longer tags the first device: udev rewrites its data file (a new inode).
    await udevWrite(
      fixture,
      "+pci:0000:01:00.0",
      udevDataText(deviceAt(tree, FIRST)).replace("Q:liveupdate\n", ""),
    );
    // The passed-over one is tagged again, changed in place with a new unit (same inode).
    const secondData = `${fixture.udev}/data/+pci:0000:01:00.4`;
    await Deno.writeTextFile(
      secondData,
      udevDataText(deviceAt(tree, SECOND)).replace("vm-1.service", "vm-one.service"),
    );
    // The fourth is being removed by udev: its data file is gone, the index entry not yet.
    await Deno.remove(`${fixture.udev}/data/+pci:0000:01:02.1`);
    // A fifth device is tagged.
    const added = tree.devices.find((device) => device.path === `${PORT}/0000:01:02.2`)!;
    added.tags = ["liveupdate"];
    added.udevProperties = { ...added.udevProperties, LIVEUPDATE_UNIT: "vm-4.service" };
    await udevWrite(fixture, "+pci:0000:01:02.2", udevDataText(added));
    await Deno.writeTextFile(`${fixture.udev}/tags/liveupdate/+pci:0000:01:02.2`, "");

    const second = run(fixture, fs, first.text);
    assert.deepEqual(second.selection, plain(fixture, fs), name);
    assert.equal(second.cache.hits, 1, `${name}: only the third device is unchanged`);
    assert.deepEqual(
      second.selection.devices.map((device) => [device.path, device.unit]),
      [
        [SECOND, "vm-one.service"],
        [`${PORT}/0000:01:01.3`, "vm-2.service"],
        [`${PORT}/0000:01:02.2`, "vm-4.service"],
      ],
      name,
    );
    assert.deepEqual(second.selection.passedOver.map((over) => over.path), [FIRST], name);
    assert.match(second.selection.warnings[0]!.message, /\+pci:0000:01:02.1" does not exist/);
    assert.match(second.text, /"listing":null/, `${name}: with a warning, never taken whole`);
    assert.equal(run(fixture, fs, second.text).cache.hits, 4, `${name}: but device by device`);
    // Restore for the next KernelFs.
    await Deno.writeTextFile(
      `${fixture.udev}/data/+pci:0000:01:02.1`,
      udevDataText(deviceAt(tree, `${PORT}/0000:01:02.1`)),
    );
    await udevWrite(fixture, "+pci:0000:01:00.0", udevDataText(deviceAt(tree, FIRST)));
    await udevWrite(
      fixture,
      "+pci:0000:01:00.4",
      udevDataText(deviceAt(tree, SECOND)).replace("Q:liveupdate\n", ""),
    );
    await Deno.remove(`${fixture.udev}/tags/liveupdate/+pci:0000:01:02.2`);
    delete added.tags;
  });
});

Deno.test("selection cache: a device gone from sysfs behind an unchanged data file is caught before anything is written", async () => {
  const tree = generateTree({ devices: 30, marked: 4 });
  await using fixture = await makeFixture(tree);
  await withEachFs(async (fs, name) => {
    const first = run(fixture, fs);
    // Hot-unplugged; udev has not processed the removal yet (its data file is unchanged).
    const gone = `${fixture.root}/gone`;
    await Deno.rename(fixture.dir(FIRST), gone);
    await Deno.rename(`${fixture.sysfs}/bus/pci/devices/0000:01:00.0`, `${gone}-link`);
    try {
      assert.match(
        plain(fixture, fs).errors[0]!.message,
        /cannot be mapped to sysfs: .* the device vanished/,
        `${name}: read afresh, the selection refuses it`,
      );
      const { selection } = run(fixture, fs, first.text);
      assert.ok(selection.devices.some((device) => device.path === FIRST), name);
      const kernel = new TreeKernel(tree);
      kernel.vanished.add(FIRST);
      const store = memoryOwnershipStore();
      await assert.rejects(
        () => reconcileDevices({ kernel, selection, store }),
        (error) => {
          assert.ok(error instanceof DeviceRefusedError, name);
          assert.equal(error.refusals[0]!.kind, "vanished");
          assert.match(error.message, /vanished \(ENOENT\).*Run "udevadm settle"/);
          return true;
        },
      );
      assert.deepEqual(kernel.writes, [], `${name}: nothing written`);
      assert.equal(store.saves, 0, `${name}: no record written`);
    } finally {
      await Deno.rename(gone, fixture.dir(FIRST));
      await Deno.rename(`${gone}-link`, `${fixture.sysfs}/bus/pci/devices/0000:01:00.0`);
    }
  });
});

Deno.test("selection cache: made for another tag, filter or format, or tampered with, it is not used", async () => {
  const tree = generateTree({ devices: 30, marked: 4 });
  await using fixture = await makeFixture(tree);
  await withEachFs((fs, name) => {
    const { text } = run(fixture, fs);
    const key = selectionCacheKey(options(fixture, fs));
    for (
      const other of [
        { ...key, tag: "other" },
        { ...key, match: { DRIVER: "vfio-pci" } },
        { ...key, sysfs: "/elsewhere" },
        { ...key, rules: "selection rules 0" },
      ]
    ) {
      const parsed = SelectionCache.parse(text, other, LATER);
      assert.ok("problem" in parsed, name);
      assert.match(parsed.problem, /made for other paths/);
    }
    const problems = [
      "",
      "{",
      text.replace('"format":2', '"format":1'),
      text.replace(`"path":"${FIRST}"`, '"path":"../../etc"'),
      text.replace('"unit":"vm-0.service"', '"unit":42'),
      text.replace(/"identities":\[\d+/, '"identities":["x"'),
      text.replace(/"identities":\[\d+,/, '"identities":['),
      text.replace(/"ids":\["[^"]*",/, '"ids":['),
      text.replace('"ancestors":[', '"ancestors":[1,'),
    ].map((bad) => SelectionCache.parse(bad, key, LATER));
    for (const [index, bad] of problems.entries()) {
      assert.ok("problem" in bad, `${name}: tampered text ${index} is refused`);
    }
    // A device whose identity no longer matches is simply a miss.
    const parsed = SelectionCache.parse(text, key, LATER);
    assert.ok(!("problem" in parsed));
    assert.equal(parsed.lookup("+pci:0000:01:00.0", newIdentity()), undefined);
  });
});

Deno.test("selection cache: a data file changed just before the run is not remembered", async () => {
  const tree = generateTree({ devices: 30, marked: 4 });
  await using fixture = await makeFixture(tree);
  await withEachFs((fs, name) => {
    // The fixture was written moments ago: within the settling time of a run starting now.
    const first = run(fixture, fs, undefined, { startedMs: Date.now() });
    assert.equal(first.cache.misses, 4, name);
    assert.match(first.text, /"ids":\[\],.*"listing":null/s, `${name}: nothing remembered`);
    const second = run(fixture, fs, first.text);
    assert.equal(second.cache.hits, 0, `${name}: read afresh`);
    assert.deepEqual(second.selection, plain(fixture, fs), name);
    // No start time (no place for a cache): nothing is remembered either.
    assert.match(run(fixture, fs, undefined, { startedMs: NaN }).text, /"ids":\[\],/, name);
  });
});

Deno.test("selection cache: kept in a file; a later in-place change of the same size is still seen", async () => {
  const tree = generateTree({ devices: 30, marked: 4 });
  await using fixture = await makeFixture(tree);
  const dir = `${fixture.root}/run`;
  const store = fileSelectionCacheStore(Deno, dir);
  await withEachFs(async (fs, name) => {
    // Let the fixture's files settle (a run trusts only versions older than SETTLE_MS).
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const first = await selectDevicesCached(options(fixture, fs), store);
    assert.deepEqual(first, plain(fixture, fs), name);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), [
      "devices-selection.cache",
    ]);
    const counting = countingFs(fs);
    const second = await selectDevicesCached(options(fixture, counting), store);
    assert.deepEqual(second, first, name);
    assert.deepEqual(counting.reads.filter((path) => path.includes("/data/")), [], name);

    // Changed in place, same size, long after the version the cache remembers.
    const file = `${fixture.udev}/data/+pci:0000:01:00.0`;
    const text = await Deno.readTextFile(file);
    await Deno.writeTextFile(file, text.replace("vm-0.service", "vm-9.service"));
    const third = await selectDevicesCached(options(fixture, fs), store);
    assert.equal(third.devices[0]!.unit, "vm-9.service", name);
    assert.deepEqual(third, plain(fixture, fs), name);
    await Deno.writeTextFile(file, text);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), [
      "devices-selection.cache",
    ], `${name}: no temporary file left behind`);
    await Deno.remove(dir, { recursive: true });
  });
});

Deno.test("selection cache: an unusable cache file or directory only costs time", async () => {
  const tree = generateTree({ devices: 30, marked: 4 });
  await using fixture = await makeFixture(tree);
  await withEachFs(async (fs, name) => {
    const dir = `${fixture.root}/run`;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/devices-selection.cache`, "not a cache");
    const store = fileSelectionCacheStore(Deno, dir);
    const loaded = await store.load(selectionCacheKey(options(fixture, fs)));
    assert.match(loaded.problem ?? "", /not JSON/, name);
    assert.equal(await store.save(loaded.cache), undefined);
    assert.deepEqual(await selectDevicesCached(options(fixture, fs), store), plain(fixture, fs));

    // The directory cannot be made (a file is in the way): the selection runs without a cache.
    await Deno.writeTextFile(`${fixture.root}/file`, "");
    const blocked = fileSelectionCacheStore(Deno, `${fixture.root}/file/run`);
    const none = await blocked.load(selectionCacheKey(options(fixture, fs)));
    assert.match(none.problem ?? "", /cannot write below/, name);
    assert.deepEqual(await selectDevicesCached(options(fixture, fs), blocked), plain(fixture, fs));
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(`${fixture.root}/file`);
  });
});

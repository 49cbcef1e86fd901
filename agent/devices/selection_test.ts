import assert from "node:assert/strict";
import { generateTree, type SimTree, udevId } from "../../tests/sim/tree.ts";
import { SelectionError } from "./devices_error.ts";
import { assertUsable, MAX_DATA_BYTES, selectDevices, type Selection } from "./selection.ts";
import { countingFs, deviceAt, type Fixture, makeFixture, withEachFs } from "./_test_fixture.ts";
import type { KernelFs } from "../host/mod.ts";

const PORT = "pci0000:00/0000:00:01.0";
const FIRST = `${PORT}/0000:01:00.0`;

/** 30 devices below one root port; 4 vfio-pci functions tagged (vm-0 … vm-3). */
function smallTree(): SimTree {
  return generateTree({ devices: 30, marked: 4 });
}

function select(fixture: Fixture, fs: KernelFs, match?: Record<string, string>): Selection {
  return selectDevices({
    fs,
    udevDb: fixture.udev,
    sysfs: fixture.sysfs,
    tag: "liveupdate",
    ...(match ? { match } : {}),
  });
}

Deno.test("selection: the tagged devices, their units and their ancestors", async () => {
  await using fixture = await makeFixture(smallTree());
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.deepEqual(selection.errors, [], name);
    assert.deepEqual(selection.warnings, [], name);
    assert.deepEqual(
      selection.devices.map((device) => [device.id, device.path, device.unit]),
      [
        ["+pci:0000:01:00.0", FIRST, "vm-0.service"],
        ["+pci:0000:01:00.4", `${PORT}/0000:01:00.4`, "vm-1.service"],
        ["+pci:0000:01:01.3", `${PORT}/0000:01:01.3`, "vm-2.service"],
        ["+pci:0000:01:02.1", `${PORT}/0000:01:02.1`, "vm-3.service"],
      ],
      name,
    );
    assert.deepEqual(selection.devices[0]!.ancestors, [PORT, "pci0000:00"], name);
    assert.deepEqual(selection.ancestors, [
      { path: "pci0000:00", below: 4 },
      { path: PORT, below: 4 },
    ]);
    assert.equal(selection.index, `${fixture.udev}/tags/liveupdate`);
    assertUsable(selection);
  });
});

Deno.test("selection: reads only the data files of tagged devices", async () => {
  const tree = generateTree({ devices: 300, marked: 3 });
  await using fixture = await makeFixture(tree);
  await withEachFs((inner, name) => {
    const fs = countingFs(inner);
    const selection = select(fixture, fs);
    assert.equal(selection.devices.length, 3, name);
    const dataReads = fs.reads.filter((path) => path.startsWith(`${fixture.udev}/data/`));
    assert.deepEqual(
      dataReads.sort(),
      selection.devices.map((device) => `${fixture.udev}/data/${device.id}`).sort(),
      name,
    );
  });
});

Deno.test("selection: property filters pass over tagged devices that do not match", async () => {
  await using fixture = await makeFixture(smallTree());
  await withEachFs((fs, name) => {
    assert.equal(select(fixture, fs, { DRIVER: "vfio-pci" }).devices.length, 4, name);
    const none = select(fixture, fs, { DRIVER: "nvme" });
    assert.deepEqual(none.devices, [], name);
    assert.equal(none.passedOver.length, 4);
    assert.equal(none.passedOver[0]!.path, FIRST);
    assert.equal(none.passedOver[0]!.unit, "vm-0.service");
    assert.equal(none.passedOver[0]!.reason, 'its property DRIVER is "vfio-pci", not "nvme"');
    const absent = select(fixture, fs, { ID_VFIO_GROUP: "7" });
    assert.equal(
      absent.passedOver[0]!.reason,
      `it has no property ID_VFIO_GROUP in udev's data or its uevent file (wanted "7")`,
    );
    // An empty value matches an absent or empty property.
    assert.equal(select(fixture, fs, { ID_VFIO_GROUP: "" }).devices.length, 4, name);
  });
});

Deno.test("selection: kernel properties come from sysfs uevent, udev's own from its data", async () => {
  const tree = smallTree();
  await using fixture = await makeFixture(tree);
  const data = `${fixture.udev}/data/+pci:0000:01:00.0`;
  // A real udev database: no kernel uevent properties (the fixture writes it so).
  assert.doesNotMatch(await Deno.readTextFile(data), /^E:DRIVER=/m);
  await withEachFs((inner, name) => {
    const fs = countingFs(inner);
    // DRIVER is only in the uevent file: read for each tagged device, once.
    assert.equal(select(fixture, fs, { DRIVER: "vfio-pci", PCI_SLOT_NAME: "" }).devices.length, 0);
    const both = select(fixture, fs, { DRIVER: "vfio-pci" });
    assert.equal(both.devices.length, 4, name);
    const uevents = fs.reads.filter((path) => path.endsWith(`${FIRST}/uevent`));
    assert.equal(uevents.length, 2, name);
    // A property udev sets wins over the kernel's of the same name; no uevent read then.
    fs.reads.length = 0;
    assert.equal(select(fixture, fs, { LIVEUPDATE_UNIT: "vm-0.service" }).devices.length, 1);
    assert.deepEqual(fs.reads.filter((path) => path.endsWith("/uevent")), [], name);
  });
  // udev overriding a kernel property (ENV{DRIVER}=...) is what the filter sees.
  await Deno.writeTextFile(
    data,
    (await Deno.readTextFile(data)).replace("V:1\n", "E:DRIVER=renamed\nV:1\n"),
  );
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs, { DRIVER: "vfio-pci" });
    assert.equal(selection.devices.length, 3, name);
    assert.equal(
      selection.passedOver[0]!.reason,
      'its property DRIVER is "renamed", not "vfio-pci"',
    );
  });
});

Deno.test("selection: a tag the rules no longer set (sticky in the index) is not selected", async () => {
  const tree = smallTree();
  await using fixture = await makeFixture(tree);
  const file = `${fixture.udev}/data/+pci:0000:01:00.0`;
  const text = await Deno.readTextFile(file);
  await Deno.writeTextFile(file, text.replace("Q:liveupdate\n", ""));
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.equal(selection.devices.length, 3, name);
    assert.equal(selection.passedOver[0]!.id, "+pci:0000:01:00.0");
    assert.match(selection.passedOver[0]!.reason, /no rule sets the tag "liveupdate" now/);
    assert.equal(selection.passedOver[0]!.path, FIRST);
  });
});

Deno.test("selection: no device carries the tag: an empty selection", async () => {
  await using fixture = await makeFixture(generateTree({ devices: 10, marked: 0 }));
  await withEachFs((fs) => {
    const selection = select(fixture, fs);
    assert.deepEqual([selection.devices, selection.errors, selection.warnings], [[], [], []]);
  });
});

Deno.test("selection: udev's leftovers are warnings, garbage is an error", async () => {
  const tree = smallTree();
  await using fixture = await makeFixture(tree);
  const index = `${fixture.udev}/tags/liveupdate`;
  // A device udev is still removing: index entry without data file.
  await Deno.writeTextFile(`${index}/+pci:0000:09:00.0`, "");
  // Not an id at all, and a directory in the index.
  await Deno.writeTextFile(`${index}/garbage`, "");
  await Deno.mkdir(`${index}/+pci:dir`);
  // A data file that is not udev's.
  await Deno.writeTextFile(`${index}/+pci:0000:01:00.1`, "");
  await Deno.writeTextFile(`${fixture.udev}/data/+pci:0000:01:00.1`, "I:1\nQ:liveupdate\n!!!\n");
  // A huge one.
  await Deno.writeTextFile(`${index}/+pci:0000:01:00.2`, "");
  await Deno.writeTextFile(
    `${fixture.udev}/data/+pci:0000:01:00.2`,
    "Q:liveupdate\n" + `E:X=${"y".repeat(MAX_DATA_BYTES)}\n`,
  );
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.equal(selection.devices.length, 4, name);
    assert.equal(selection.warnings.length, 1, name);
    assert.match(
      selection.warnings[0]!.message,
      /lists "\+pci:0000:09:00.0" but .* does not exist/,
    );
    const messages = selection.errors.map((error) => error.message).sort();
    assert.equal(messages.length, 4, name);
    assert.match(messages.join("\n"), /\/\+pci:dir" is not a regular file/);
    assert.match(
      messages.join("\n"),
      /\/garbage" is not a device id: it is none of udev.s id forms/,
    );
    assert.match(
      messages.join("\n"),
      /data\/\+pci:0000:01:00.1" line 3 is malformed: "!!!" is not a "<key>:<value>" line/,
    );
    assert.match(messages.join("\n"), /data\/\+pci:0000:01:00.2" is larger than 65536 bytes/);
    assert.throws(() => assertUsable(selection), (error) => {
      assert.ok(error instanceof SelectionError);
      assert.equal(error.problems.length, 4);
      assert.match(error.message, /\(and 3 more problems\)$/);
      return true;
    });
  });
});

Deno.test("selection: a vanished device and links that lead elsewhere are refused", async () => {
  const tree = smallTree();
  await using fixture = await makeFixture(tree);
  const bus = `${fixture.sysfs}/bus/pci/devices`;
  // Hot-unplugged: the bus link is gone.
  await Deno.remove(`${bus}/0000:01:00.4`);
  // Links that leave sysfs or climb back out of devices/.
  await Deno.remove(`${bus}/0000:01:01.3`);
  await Deno.symlink("../../../../../etc", `${bus}/0000:01:01.3`);
  await Deno.remove(`${bus}/0000:01:02.1`);
  await Deno.symlink("../../../devices/../../etc", `${bus}/0000:01:02.1`);
  // The device directory itself replaced by a symlink to somewhere else.
  const outside = `${fixture.root}/outside`;
  await Deno.mkdir(outside);
  await Deno.rename(fixture.dir(FIRST), `${outside}/moved`);
  await Deno.symlink(`${outside}/moved`, fixture.dir(FIRST));
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.deepEqual(selection.devices, [], name);
    const text = selection.errors.map((error) => `${error.id}: ${error.message}`).sort().join("\n");
    assert.match(text, /\+pci:0000:01:00.0: .*0000:01:00.0" is a symlink; a device path must lead/);
    assert.match(
      text,
      /\+pci:0000:01:00.4: .*does not exist: the device vanished\. Run "udevadm settle"/,
    );
    assert.match(text, /\+pci:0000:01:01.3: .*leads outside the sysfs root/);
    assert.match(text, /\+pci:0000:01:02.1: .*is not a plain relative path/);
  });
});

Deno.test("selection: an ancestor directory that is a symlink is refused", async () => {
  const tree = smallTree();
  await using fixture = await makeFixture(tree);
  const moved = `${fixture.root}/moved-port`;
  await Deno.rename(fixture.dir(PORT), moved);
  await Deno.symlink(moved, fixture.dir(PORT));
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.deepEqual(selection.devices, [], name);
    assert.equal(selection.errors.length, 4, name);
    assert.match(selection.errors[0]!.message, /0000:00:01.0" is a symlink/);
  });
});

Deno.test("selection: block, character and network devices by their ids", async () => {
  const tree = generateTree({ devices: 30, marked: 0 });
  for (const device of tree.devices) {
    if (device.devnum || device.ifindex !== undefined) {
      device.tags = ["liveupdate"];
      device.udevProperties = { ...device.udevProperties, LIVEUPDATE_UNIT: "storage.service" };
    }
  }
  await using fixture = await makeFixture(tree);
  // eth1 (ifindex 3) was renamed after udev wrote its data: INTERFACE is stale.
  const stale = `${fixture.udev}/data/n3`;
  await Deno.writeTextFile(
    stale,
    (await Deno.readTextFile(stale)).replace("INTERFACE=eth1", "INTERFACE=eth0"),
  );
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.deepEqual(selection.errors, [], name);
    const byId = Object.fromEntries(selection.devices.map((device) => [device.id, device.path]));
    assert.deepEqual(byId, {
      "b259:0": `${PORT}/0000:01:00.6/nvme/nvme0/nvme0n1`,
      "b259:1": `${PORT}/0000:01:01.6/nvme/nvme1/nvme1n1`,
      "c240:0": `${PORT}/0000:01:00.6/nvme/nvme0`,
      "c240:1": `${PORT}/0000:01:01.6/nvme/nvme1`,
      "n2": `${PORT}/0000:01:00.7/net/eth0`,
      "n3": `${PORT}/0000:01:01.7/net/eth1`,
    }, name);
    // The nvme0 directory (grouping "nvme/") is skipped; nvme0 is nvme0n1's parent device.
    const disk = selection.devices.find((device) => device.id === "b259:0")!;
    assert.deepEqual(disk.ancestors, [
      `${PORT}/0000:01:00.6/nvme/nvme0`,
      `${PORT}/0000:01:00.6`,
      PORT,
      "pci0000:00",
    ]);
    // nvme0 is selected itself, so it is not listed among the ancestors preserved with them.
    assert.ok(!selection.ancestors.some((a) => a.path === `${PORT}/0000:01:00.6/nvme/nvme0`));
    assert.ok(selection.ancestors.some((a) => a.path === `${PORT}/0000:01:00.6`));
  });
});

Deno.test("selection: drivers, non-device subsystems and bad units are refused", async () => {
  const tree = smallTree();
  await using fixture = await makeFixture(tree);
  const index = `${fixture.udev}/tags/liveupdate`;
  for (const id of ["+drivers:pci:vfio-pci", "+module:kvm"]) {
    await Deno.writeTextFile(`${index}/${id}`, "");
    await Deno.writeTextFile(`${fixture.udev}/data/${id}`, "Q:liveupdate\nV:1\n");
  }
  const file = `${fixture.udev}/data/+pci:0000:01:00.0`;
  await Deno.writeTextFile(
    file,
    (await Deno.readTextFile(file)).replace("LIVEUPDATE_UNIT=vm-0.service", "LIVEUPDATE_UNIT=vm 0"),
  );
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.equal(selection.devices.length, 3, name);
    const text = selection.errors.map((error) => error.message).join("\n");
    assert.match(
      text,
      /"\+drivers:pci:vfio-pci" .*names the driver "vfio-pci" of bus "pci", not a device/,
    );
    assert.match(text, /"\+module:kvm" .*neither "bus\/module" nor "class\/module"/);
    assert.match(
      text,
      /LIVEUPDATE_UNIT="vm 0" on "\+pci:0000:01:00.0", which is not a systemd unit/,
    );
  });
});

Deno.test("selection: two ids for one device select it once", async () => {
  const tree = smallTree();
  const first = deviceAt(tree, FIRST);
  await using fixture = await makeFixture(tree);
  // A class link to the same device, and an index entry for it.
  await Deno.mkdir(`${fixture.sysfs}/class/vfio-dev`, { recursive: true });
  await Deno.symlink(`../../devices/${FIRST}`, `${fixture.sysfs}/class/vfio-dev/vfio0`);
  await Deno.writeTextFile(`${fixture.udev}/tags/liveupdate/+vfio-dev:vfio0`, "");
  await Deno.writeTextFile(`${fixture.udev}/data/+vfio-dev:vfio0`, "Q:liveupdate\nV:1\n");
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.equal(selection.devices.length, 4, name);
    assert.equal(selection.warnings.length, 1, name);
    assert.match(
      selection.warnings[0]!.message,
      /both lead to ".*0000:01:00.0"; it is selected once/,
    );
    assert.equal(udevId(first), "+pci:0000:01:00.0");
  });
});

Deno.test("selection: a device directory that is a symlink is refused among many siblings", async () => {
  // Ten tagged functions below one port: their directories are checked by listing the port.
  const tree = generateTree({ devices: 120, marked: 10 });
  await using fixture = await makeFixture(tree);
  const victim = tree.devices.filter((device) => device.tags?.length)[3]!.path;
  const moved = `${fixture.root}/moved`;
  await Deno.rename(fixture.dir(victim), moved);
  await Deno.symlink(moved, fixture.dir(victim));
  await withEachFs((fs, name) => {
    const selection = select(fixture, fs);
    assert.equal(selection.devices.length, 9, name);
    assert.ok(!selection.devices.some((device) => device.path === victim), name);
    assert.equal(selection.errors.length, 1, name);
    assert.match(
      selection.errors[0]!.message,
      /is a symlink; a device path must lead through real/,
    );
  });
});

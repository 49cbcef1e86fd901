/**
 * The device selection against the simulated kernel's sysfs (reached through
 * /proc/<pid>/root, where realpath would leave the mount): by tag, by property
 * filter, for every kind of udev id, and refusing malformed udev data.
 */
import assert from "node:assert/strict";
import { assertUsable, MAX_DATA_BYTES, SelectionError } from "../../agent/devices/mod.ts";
import { generateTree } from "../sim/tree.ts";
import { startRig } from "./_devices_sim.ts";

const PORT = "pci0000:00/0000:00:01.0";

Deno.test("select: tagged devices through the simulator's sysfs, with ancestors and units", async () => {
  await using rig = await startRig(generateTree({ devices: 400, marked: 9 }));
  assert.match(rig.sim.root, /^\/proc\/\d+\/root\//);
  const selection = rig.select();
  assert.deepEqual(selection.errors, []);
  assert.equal(selection.devices.length, 9);
  const tagged = rig.tree.devices.filter((device) => device.tags?.includes("liveupdate"));
  assert.deepEqual(
    selection.devices.map((device) => device.path),
    tagged.map((device) => device.path).sort(),
  );
  for (const device of selection.devices) {
    assert.match(device.unit!, /^vm-\d+\.service$/);
    assert.equal(device.ancestors.at(-1), "pci0000:00");
  }
  assert.ok(selection.ancestors.some((ancestor) => ancestor.path === PORT));
});

Deno.test("select: property filters", async () => {
  await using rig = await startRig(generateTree({ devices: 60, marked: 5 }));
  assert.equal(rig.select({ DRIVER: "vfio-pci" }).devices.length, 5);
  assert.equal(rig.select({ DRIVER: "vfio-pci", PCI_ID: "15b3:101e" }).devices.length, 5);
  const none = rig.select({ PCI_ID: "8086:1234" });
  assert.equal(none.devices.length, 0);
  assert.equal(none.passedOver.length, 5);
  assert.match(none.passedOver[0]!.reason, /PCI_ID is "15b3:101e", not "8086:1234"/);
});

Deno.test("select: block, character and network devices resolve through the simulator", async () => {
  const tree = generateTree({ devices: 30, marked: 0 });
  for (const device of tree.devices) {
    if (device.devnum || device.ifindex !== undefined) device.tags = ["liveupdate"];
  }
  await using rig = await startRig(tree);
  const selection = rig.select();
  assert.deepEqual(selection.errors, []);
  assert.deepEqual(
    selection.devices.map((device) => device.id).sort(),
    ["b259:0", "b259:1", "c240:0", "c240:1", "n2", "n3"],
  );
  const net = selection.devices.find((device) => device.id === "n2")!;
  assert.equal(net.path, `${PORT}/0000:01:00.7/net/eth0`);
  assert.deepEqual(net.ancestors, [`${PORT}/0000:01:00.7`, PORT, "pci0000:00"]);
});

Deno.test("select: malformed udev data, unknown ids and huge files are refused, nothing written", async () => {
  await using rig = await startRig(generateTree({ devices: 60, marked: 5 }));
  const index = `${rig.udev}/tags/liveupdate`;
  await Deno.writeTextFile(`${index}/x0:0`, "");
  await Deno.writeTextFile(`${rig.udev}/data/+pci:0000:01:00.0`, "I:1\nQ:liveupdate\nE:NOVALUE\n");
  await Deno.writeTextFile(`${index}/+pci:0000:01:00.1`, "");
  await Deno.writeTextFile(
    `${rig.udev}/data/+pci:0000:01:00.1`,
    "Q:liveupdate\n" + "E:X=" + "x".repeat(MAX_DATA_BYTES) + "\n",
  );
  const selection = rig.select();
  const text = selection.errors.map((error) => error.message).join("\n");
  assert.equal(selection.errors.length, 3, text);
  assert.match(text, /\/x0:0" is not a device id/);
  assert.match(text, /\+pci:0000:01:00\.0" line 3 is malformed: "E:NOVALUE" is not a property/);
  assert.match(text, /\+pci:0000:01:00\.1" is larger than 65536 bytes/);
  assert.throws(() => assertUsable(selection), SelectionError);
  assert.equal((await rig.sim.events()).filter((event) => event.type === "write").length, 0);
});

Deno.test("select: a device removed from the simulated kernel is reported vanished", async () => {
  await using rig = await startRig(generateTree({ devices: 60, marked: 5 }));
  const first = rig.select().devices[0]!;
  assert.ok(await rig.sim.removeDevice(first.path) >= 1);
  const selection = rig.select();
  assert.equal(selection.devices.length, 4);
  assert.equal(selection.errors.length, 1);
  assert.match(
    selection.errors[0]!.message,
    /does not exist: the device vanished\. Run "udevadm settle"/,
  );
});

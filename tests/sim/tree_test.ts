import assert from "node:assert/strict";
import { generateTree, simTreeText, udevId, writePlainSysfs, writeUdevDb } from "./tree.ts";

Deno.test("generateTree makes exactly the requested number of devices, parents first", () => {
  for (const count of [1, 2, 17, 1000]) {
    const tree = generateTree({ devices: count, marked: 3 });
    assert.equal(tree.devices.length, count);
    const seen = new Set<string>();
    for (const device of tree.devices) {
      const parent = device.path.includes("/")
        ? device.path.slice(0, device.path.lastIndexOf("/"))
        : undefined;
      if (parent !== undefined) {
        // nvme/net class devices sit below a "nvme"/"net" grouping directory.
        const owner = parent.replace(/\/(nvme|net)$/, "");
        assert.ok(seen.has(owner), `${device.path} listed before its parent ${owner}`);
      }
      assert.ok(!seen.has(device.path), `duplicate ${device.path}`);
      seen.add(device.path);
    }
  }
});

Deno.test("generateTree marks the requested number of vfio-pci functions", () => {
  const tree = generateTree({ devices: 10_000, marked: 1_000 });
  const marked = tree.devices.filter((device) => device.tags?.includes("liveupdate"));
  assert.equal(marked.length, 1_000);
  assert.ok(marked.every((device) => device.driver === "vfio-pci"));
  assert.equal(new Set(marked.map((device) => udevId(device))).size, 1_000);
});

Deno.test("tree writers produce the simulator file, a plain sysfs and a udev database", async () => {
  const tree = generateTree({ devices: 300, marked: 5 });
  const text = simTreeText(tree);
  assert.equal(text.split("\n").filter((line) => line && !line.startsWith("#")).length, 300);
  const dir = await Deno.makeTempDir();
  try {
    await writePlainSysfs(tree, `${dir}/sys`);
    await writeUdevDb(tree, `${dir}/udev`);
    const tagged = [...Deno.readDirSync(`${dir}/udev/tags/liveupdate`)].map((entry) => entry.name);
    assert.equal(tagged.length, 5);
    const first = tree.devices.find((device) => device.tags)!;
    const data = await Deno.readTextFile(`${dir}/udev/data/${udevId(first)}`);
    assert.match(data, /^E:LIVEUPDATE_UNIT=vm-0\.service$/m);
    assert.match(data, /^G:liveupdate$/m);
    // As systemd-udevd writes it: udev's own properties only; the kernel's are in sysfs.
    assert.doesNotMatch(data, /^E:(DRIVER|PCI_SLOT_NAME|PCI_ID|MODALIAS)=/m);
    assert.match(
      await Deno.readTextFile(`${dir}/sys/devices/${first.path}/uevent`),
      /^DRIVER=vfio-pci$/m,
    );
    const viaBus = await Deno.realPath(
      `${dir}/sys/bus/pci/devices/${first.path.split("/").at(-1)}`,
    );
    assert.equal(viaBus, await Deno.realPath(`${dir}/sys/devices/${first.path}`));
    const block = tree.devices.find((device) => device.devnum?.kind === "b")!;
    const viaDev = await Deno.realPath(`${dir}/sys/dev/block/259:${block.devnum!.minor}`);
    assert.equal(viaDev, await Deno.realPath(`${dir}/sys/devices/${block.path}`));
    assert.equal(
      await Deno.readTextFile(`${dir}/sys/devices/${first.path}/liveupdate/requested`),
      "0\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

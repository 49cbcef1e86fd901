/**
 * Conformance at scale: a 100,000-device host mounts, lists correctly (every
 * device directory reachable, every bus/class/dev listing complete, sampled
 * devices exact) and prepares a thousand requested devices deepest first.
 */
import assert from "node:assert/strict";
import { BUS_SUBSYSTEMS, generateTree, type SimDevice, sysname, writeSimTree } from "./tree.ts";
import { resolveLexically, startSim } from "./harness.ts";

const DEVICES = 100_000;

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
}

function countBy(devices: SimDevice[], key: (d: SimDevice) => string | undefined) {
  const counts = new Map<string, number>();
  for (const device of devices) {
    const k = key(device);
    if (k !== undefined) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

Deno.test("100,000 devices mount and list correctly", async () => {
  const tree = generateTree({ devices: DEVICES, marked: 1_000 });
  const dir = await Deno.makeTempDir({ prefix: "luo-sim-scale-" });
  try {
    await writeSimTree(tree, `${dir}/tree.txt`);
    await using sim = await startSim({ tree: `${dir}/tree.txt` });
    assert.equal((await sim.status()).devices, DEVICES);

    // Every listing of links is complete.
    const bySubsystem = countBy(tree.devices, (d) => d.subsystem);
    for (const [subsystem, count] of bySubsystem) {
      const listing = BUS_SUBSYSTEMS.has(subsystem)
        ? `bus/${subsystem}/devices`
        : `class/${subsystem}`;
      const found = await names(sim.path(listing));
      assert.equal(found.length, count, listing);
    }
    const busNames = await names(sim.path("bus/pci/devices"));
    assert.deepEqual(
      busNames,
      tree.devices.filter((d) => d.subsystem === "pci").map(sysname).sort(),
    );
    for (const kind of ["c", "b"] as const) {
      const expected = tree.devices.filter((d) => d.devnum?.kind === kind)
        .map((d) => `${d.devnum!.major}:${d.devnum!.minor}`).sort();
      assert.deepEqual(await names(sim.path(kind === "c" ? "dev/char" : "dev/block")), expected);
    }

    // Directory listings below devices/ are exact: every root complex and root
    // port in full (they hold three quarters of the devices), and a spread
    // sample of the rest (walking all 100,000 costs ~30 s of FUSE lookups).
    const byPath = new Map(tree.devices.map((d) => [d.path, d]));
    const children = new Map<string, Set<string>>();
    for (const device of tree.devices) {
      const parts = device.path.split("/");
      for (let i = 0; i < parts.length; i++) {
        const parent = parts.slice(0, i).join("/");
        if (!children.has(parent)) children.set(parent, new Set());
        children.get(parent)!.add(parts[i]!);
      }
    }
    const expectedListing = (path: string) => {
      const entries = [...(children.get(path) ?? [])];
      const device = byPath.get(path);
      if (device) {
        entries.push("uevent", "liveupdate");
        if (device.subsystem) entries.push("subsystem");
        if (device.subsystem && BUS_SUBSYSTEMS.has(device.subsystem) && device.driver) {
          entries.push("driver");
        }
      }
      return entries.sort();
    };
    const full = [
      "",
      ...tree.devices.filter((d) => d.path.split("/").length <= 2).map((d) => d.path),
    ];
    const sampled = [...children.keys()].filter((_, i) => i % 97 === 0);
    let listed = 0;
    for (const path of new Set([...full, ...sampled])) {
      assert.deepEqual(await names(sim.path(`devices/${path}`)), expectedListing(path), path);
      listed += children.get(path)?.size ?? 0;
    }
    assert.ok(listed > DEVICES / 2, `listed ${listed} entries`);

    // A spread sample is exact: uevent, links, flags.
    const step = Math.floor(DEVICES / 400);
    for (let i = 0; i < DEVICES; i += step) {
      const device = tree.devices[i]!;
      const uevent = Object.entries(device.uevent).map(([k, v]) => `${k}=${v}\n`).join("");
      assert.equal(await Deno.readTextFile(sim.device(device.path, "uevent")), uevent);
      assert.equal(await Deno.readTextFile(sim.device(device.path, "liveupdate/requested")), "0\n");
      if (device.subsystem) {
        const bus = BUS_SUBSYSTEMS.has(device.subsystem);
        const link = bus
          ? `bus/${device.subsystem}/devices/${sysname(device)}`
          : `class/${device.subsystem}/${sysname(device)}`;
        assert.equal(await resolveLexically(sim.root, link), `devices/${device.path}`);
        assert.equal(
          await resolveLexically(sim.root, `devices/${device.path}/subsystem`),
          bus ? `bus/${device.subsystem}` : `class/${device.subsystem}`,
        );
      }
    }

    // The thousand marked devices plus their ancestors are prepared deepest first.
    const marked = tree.devices.filter((d) => d.tags?.includes("liveupdate"));
    for (const device of marked) {
      await Deno.writeTextFile(sim.device(device.path, "liveupdate/requested"), "1");
    }
    const since = (await sim.status()).events;
    await Deno.writeTextFile(sim.path("kernel/liveupdate/prepare"), "1");
    const prepared = (await sim.events({ since }))
      .filter((e) => e.type === "device" && e.event === "PREPARE").map((e) => e.device!);
    const paths = new Set(tree.devices.map((d) => d.path));
    const expected = new Set<string>();
    for (const device of marked) {
      for (let path = device.path; path; path = path.slice(0, Math.max(0, path.lastIndexOf("/")))) {
        if (paths.has(path)) expected.add(path);
      }
    }
    assert.deepEqual(new Set(prepared), expected);
    assert.equal(prepared.length, expected.size);
    const depth = (path: string) => path.split("/").length;
    for (let i = 1; i < prepared.length; i++) {
      assert.ok(depth(prepared[i - 1]!) >= depth(prepared[i]!), `order at ${i}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Conformance: the simulator's layout is exactly writePlainSysfs's (names,
 * types, relative symlink targets, contents), reached through
 * /proc/<pid>/root, with symlinks resolved lexically.
 */
import assert from "node:assert/strict";
import { generateTree, type SimTree, writePlainSysfs } from "./tree.ts";
import { resolveLexically, startSim } from "./harness.ts";
import { DEV, smallTree } from "./_conformance.ts";

type Node = { type: "dir" } | { type: "file"; contents?: string } | {
  type: "link";
  target: string;
};

/** Every entry below root (except .luo-sim), with link targets and readable contents. */
async function snapshot(root: string): Promise<Map<string, Node>> {
  const nodes = new Map<string, Node>();
  const walk = async (relative: string) => {
    for await (const entry of Deno.readDir(`${root}/${relative}`)) {
      if (!relative && entry.name === ".luo-sim") continue;
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isSymlink) {
        nodes.set(path, { type: "link", target: await Deno.readLink(`${root}/${path}`) });
      } else if (entry.isDirectory) {
        nodes.set(path, { type: "dir" });
        await walk(path);
      } else {
        const mode = (await Deno.stat(`${root}/${path}`)).mode! & 0o777;
        // prepare/finish are write-only on sysfs (0200); their plain copies are empty.
        const readable = mode & 0o444;
        nodes.set(path, {
          type: "file",
          contents: readable ? await Deno.readTextFile(`${root}/${path}`) : undefined,
        });
      }
    }
  };
  await walk("");
  return nodes;
}

async function compareWithPlainSysfs(tree: SimTree): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "luo-sim-plain-" });
  try {
    await writePlainSysfs(tree, dir);
    const plain = await snapshot(dir);
    for (const file of ["kernel/liveupdate/prepare", "kernel/liveupdate/finish"]) {
      plain.set(file, { type: "file", contents: undefined });
    }
    await using sim = await startSim({ tree });
    const simulated = await snapshot(sim.root);
    assert.deepEqual(
      [...simulated.keys()].sort(),
      [...plain.keys()].sort(),
      "the same names in the same places",
    );
    for (const [path, node] of plain) assert.deepEqual(simulated.get(path), node, path);
    // Every link resolves (lexically) to a directory of the tree.
    for (const [path, node] of simulated) {
      if (node.type !== "link") continue;
      const target = await resolveLexically(sim.root, path);
      assert.equal(simulated.get(target)?.type, "dir", `${path} → ${target}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the layout equals writePlainSysfs's for the hand-made tree", async () => {
  await compareWithPlainSysfs(smallTree());
});

Deno.test("the layout equals writePlainSysfs's for a generated host of 300 devices", async () => {
  await compareWithPlainSysfs(generateTree({ devices: 300, marked: 5, unsupportedPortEvery: 3 }));
});

Deno.test("links, uevent and the control directory read as expected", async () => {
  await using sim = await startSim({ tree: smallTree() });
  assert.equal(await Deno.readLink(sim.device(DEV.a, "subsystem")), "../../../../bus/pci");
  assert.equal(
    await Deno.readLink(sim.device(DEV.a, "driver")),
    "../../../../bus/pci/drivers/vfio-pci",
  );
  assert.equal(
    await Deno.readLink(sim.device(DEV.eth0, "subsystem")),
    "../../../../../../class/net",
  );
  assert.equal(
    await Deno.readLink(sim.path("bus/pci/devices/0000:01:00.0")),
    `../../../devices/${DEV.a}`,
  );
  assert.equal(await Deno.readLink(sim.path("class/net/eth0")), `../../devices/${DEV.eth0}`);
  assert.equal(await Deno.readLink(sim.path("dev/block/259:0")), `../../devices/${DEV.nvmeDisk}`);
  assert.equal(
    await resolveLexically(sim.root, "bus/pci/devices/0000:01:00.0/net/eth0/subsystem/eth0"),
    `devices/${DEV.eth0}`,
  );
  assert.equal(
    await resolveLexically(sim.root, "dev/char/240:0/subsystem"),
    "class/nvme",
  );
  assert.equal(
    await Deno.readTextFile(sim.device(DEV.nvmeDisk, "uevent")),
    "MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1\nDEVTYPE=disk\n",
  );
  assert.equal(await Deno.readTextFile(sim.device(DEV.root, "uevent")), "");
  assert.equal(await Deno.readTextFile(sim.path("kernel/liveupdate/state")), "normal\n");
  const control = [...Deno.readDirSync(sim.path(".luo-sim"))].map((e) => e.name).sort();
  assert.deepEqual(control, ["boot_id", "control", "events", "status"]);
  assert.match(await Deno.readTextFile(sim.path(".luo-sim/boot_id")), /^[0-9a-f-]{36}\n$/);
  // Deno.realPath resolves /proc/<pid>/root itself and lands in this namespace,
  // where the mountpoint is an empty directory: the trap the harness documents.
  const real = await Deno.realPath(sim.path("bus/pci")).catch(() => undefined);
  assert.ok(real === undefined || !real.startsWith(sim.root), String(real));
});

Deno.test("inode numbers are stable across lookups, writes and reboots", async () => {
  await using sim = await startSim({ tree: smallTree() });
  const files = [
    sim.device(DEV.a, "liveupdate/requested"),
    sim.device(DEV.eth0),
    sim.path("kernel/liveupdate/state"),
    sim.path("class/net/eth0"),
  ];
  const inodes = async () => {
    const found: number[] = [];
    for (const file of files) found.push((await Deno.lstat(file)).ino!);
    return found;
  };
  const before = await inodes();
  assert.equal(new Set(before).size, files.length);
  await Deno.writeTextFile(files[0]!, "1");
  await sim.kexec();
  assert.deepEqual(await inodes(), before);
});

Deno.test("uevent takes the actions kobject_synth_uevent knows and refuses the rest", async () => {
  await using sim = await startSim({ tree: smallTree() });
  const uevent = sim.device(DEV.a, "uevent");
  await Deno.writeTextFile(uevent, "change\n");
  await Deno.writeTextFile(uevent, "add 0e2f5a9c-8b87-4f0e-9c3e-8d2f2b1c7a11 SEQ=1");
  await assert.rejects(() => Deno.writeTextFile(uevent, "bogus"), (e: Error) => {
    return (e as { code?: string }).code === "EINVAL";
  });
  const actions = (await sim.events()).filter((e) => e.type === "uevent").map((e) => e.action);
  assert.deepEqual(actions, ["change", "add"]);
});

Deno.test("with live update disabled there is no kernel/liveupdate and no device liveupdate/", async () => {
  await using sim = await startSim({ tree: smallTree(), enabled: false });
  assert.deepEqual([...Deno.readDirSync(sim.path("kernel"))], []);
  const names = [...Deno.readDirSync(sim.device(DEV.a))].map((e) => e.name).sort();
  assert.deepEqual(names, ["driver", "net", "subsystem", "uevent"]);
  await assert.rejects(() => Deno.stat(sim.device(DEV.a, "liveupdate")), Deno.errors.NotFound);
  await assert.rejects(
    () => Deno.readTextFile(sim.path("kernel/liveupdate/state")),
    Deno.errors.NotFound,
  );
  assert.equal((await sim.status()).enabled, false);
});

/** The error message of starting a simulator on `file` ("started" if it started). */
async function startFailure(file: string): Promise<string> {
  return await startSim({ tree: file }).then(
    async (sim) => {
      await sim.stop();
      return "started";
    },
    (error: Error) => error.message,
  );
}

Deno.test("a bad tree file stops the simulator with the line and the reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "luo-sim-bad-" });
  try {
    const cases: [string, RegExp][] = [
      ["a\t1\t1\t-\t-\t-\n", /line 1: expected at least 7/],
      ["a\t2\t1\t-\t-\t-\t-\n", /line 1: bus_support "2" of a is not 0 or 1/],
      ["a\t1\t1\t-\t-\tx:1:2\t-\n", /line 1: devnum "x:1:2"/],
      ["a\t1\t1\t-\t-\t-\t-\tNOEQUALS\n", /uevent property "NOEQUALS"/],
      ["# c\na\t1\t1\t-\t-\t-\t-\na\t1\t1\t-\t-\t-\t-\n", /line 3: device a is listed twice/],
      ["a/b\t1\t1\t-\t-\t-\t-\na\t1\t1\t-\t-\t-\t-\n", /line 2: .*list parents first/],
      ["a/../b\t1\t1\t-\t-\t-\t-\n", /device path "a\/..\/b"/],
      [
        "a\t1\t1\tpci\t-\t-\t-\nb\t1\t1\tpci\t-\t-\t-\nc/a\t1\t1\tpci\t-\t-\t-\n",
        /bus\/pci\/devices\/a twice/,
      ],
      ["a\t1\t1\t-\t-\t-\t-\na/uevent\t1\t1\t-\t-\t-\t-\n", /devices\/a\/uevent twice/],
      ["# nothing\n", /lists no device/],
    ];
    for (const [text, message] of cases) {
      const file = `${dir}/tree.txt`;
      await Deno.writeTextFile(file, text);
      assert.match(await startFailure(file), message, JSON.stringify(text));
    }
    assert.match(await startFailure(`${dir}/missing`), /cannot open tree file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

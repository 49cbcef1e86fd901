import assert from "node:assert/strict";
import { OwnershipRecordError } from "./devices_error.ts";
import { fileOwnershipStore, ownedFromJson, ownedToJson, OWNERSHIP_FILE } from "./ownership.ts";

Deno.test("ownership record: written atomically, read back, absent means empty", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-owned-" });
  try {
    const store = fileOwnershipStore(Deno, `${dir}/state`);
    assert.equal((await store.load()).size, 0);
    const owned = new Map([
      ["pci0000:00/b", { id: "+pci:b" }],
      ["pci0000:00/a", { id: "+pci:a", unit: "vm@1.service" }],
    ]);
    await store.save(owned);
    assert.deepEqual(await store.load(), owned);
    const text = await Deno.readTextFile(`${dir}/state/${OWNERSHIP_FILE}`);
    // Sorted, one device per line; no temporary file left behind.
    assert.equal(
      text,
      '{"version":1,"devices":[\n' +
        '{"path":"pci0000:00/a","id":"+pci:a","unit":"vm@1.service"},\n' +
        '{"path":"pci0000:00/b","id":"+pci:b"}\n]}\n',
    );
    assert.deepEqual([...Deno.readDirSync(`${dir}/state`)].map((e) => e.name), [OWNERSHIP_FILE]);
    await store.save(new Map());
    assert.equal((await store.load()).size, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ownership record: an unreadable record is a clear error, never an empty one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-owned-" });
  try {
    const store = fileOwnershipStore(Deno, dir);
    for (
      const [text, reason] of [
        ["{", /is not JSON/],
        ["[]", /its version is undefined/],
        ['{"version":2,"devices":[]}', /its version is 2, this agent reads version 1/],
        ['{"version":1}', /has no "devices" list/],
        ['{"version":1,"devices":[{"path":"../etc","id":"x"}]}', /device entry 0 is not/],
        ['{"version":1,"devices":[{"path":"a","id":1}]}', /device entry 0 is not/],
      ] as const
    ) {
      await Deno.writeTextFile(`${dir}/${OWNERSHIP_FILE}`, text);
      await assert.rejects(() => store.load(), (error) => {
        assert.ok(error instanceof OwnershipRecordError);
        assert.match(error.message, reason);
        assert.match(error.message, /move it aside only after checking them/);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ownership record: a state directory that cannot be written is a clear error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-owned-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    const store = fileOwnershipStore(Deno, `${dir}/file/state`);
    await assert.rejects(() => store.save(new Map()), (error) => {
      assert.ok(error instanceof OwnershipRecordError);
      assert.match(error.message, /Cannot write the record of requested devices ".*file\/state/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ownership record: JSON round trip", () => {
  const owned = new Map([["x/y", { id: "c1:2", unit: "a.service" }]]);
  assert.deepEqual(ownedFromJson(ownedToJson(owned)), owned);
  assert.deepEqual(ownedFromJson(ownedToJson(new Map())), new Map());
});

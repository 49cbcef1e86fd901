import assert from "node:assert/strict";
import { failed, IDENTITY_LENGTH, isSettled, newIdentity, sameIdentity } from "../host/mod.ts";
import { withEachFs } from "./_test_fixture.ts";

Deno.test("file identity: a version of a file, a new file, a change in place", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-identity-" });
  try {
    await Deno.mkdir(`${root}/dir`);
    await withEachFs(async (fs, name) => {
      await Deno.writeTextFile(`${root}/a`, "one\n");
      const identity = fs.identity!;
      const first = newIdentity();
      assert.ok(identity.identify(`${root}/a`, first), name);
      const again = newIdentity();
      const buffer = new Uint8Array(16);
      assert.equal(identity.readIdentified(`${root}/a`, buffer, again), 4, name);
      assert.ok(sameIdentity(first, again), `${name}: reading does not change it`);
      assert.ok(!identity.identify(`${root}/dir`, newIdentity()), `${name}: not a regular file`);
      assert.ok(!identity.identify(`${root}/missing`, newIdentity()), name);
      assert.equal(
        (identity.readIdentified(`${root}/missing`, buffer, again) as { errno: string })
          .errno,
        "ENOENT",
      );

      // Replaced (a new inode) or grown in place: another identity.
      await Deno.writeTextFile(`${root}/b`, "two\n");
      await Deno.rename(`${root}/b`, `${root}/a`);
      const replaced = newIdentity();
      assert.ok(identity.identify(`${root}/a`, replaced));
      assert.ok(!sameIdentity(first, replaced), `${name}: replaced`);
      await Deno.writeTextFile(`${root}/a`, "three\n");
      const grown = newIdentity();
      assert.ok(identity.identify(`${root}/a`, grown));
      assert.ok(!sameIdentity(replaced, grown), `${name}: changed in place`);

      assert.ok(identity.sameIdentities(root, ["a"], grown), name);
      assert.ok(!identity.sameIdentities(root, ["a"], first), name);
      assert.ok(!identity.sameIdentities(root, ["a", "missing"], [...grown, ...grown]), name);
      assert.ok(identity.sameIdentities(root, [], []), name);
      // Just written: not settled for a run starting now; settled for one starting later.
      assert.ok(!isSettled(grown, Date.now()), name);
      assert.ok(isSettled(grown, Date.now() + 60_000), name);
      assert.equal(grown.length, IDENTITY_LENGTH);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("file identity: listings tell an unchanged directory, and are bounded", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-identity-" });
  try {
    // More than one getdents64 buffer (64 KiB) of entries.
    const names = Array.from({ length: 3000 }, (_, i) => `+pci:0000:${String(i).padStart(6, "0")}`);
    for (const name of names) await Deno.writeTextFile(`${root}/${name}`, "");
    await Deno.mkdir(`${root}/sub`);
    await withEachFs(async (fs, name) => {
      const first = fs.identity!.list(root, 3001);
      assert.ok(!failed(first), name);
      const entries = first.entries();
      assert.deepEqual(entries.map((entry) => entry.name).sort(), [...names, "sub"].sort(), name);
      assert.equal(entries.filter((entry) => entry.isFile).length, 3000, name);
      assert.ok(entries.find((entry) => entry.name === "sub")!.isDirectory, name);
      const second = fs.identity!.list(root, 3001);
      assert.ok(!failed(second));
      assert.equal(second.key, first.key, `${name}: unchanged`);

      await Deno.remove(`${root}/${names[7]}`);
      const removed = fs.identity!.list(root, 3001);
      assert.ok(!failed(removed) && removed.key !== first.key, `${name}: one entry fewer`);
      await Deno.writeTextFile(`${root}/${names[7]}`, "");

      const bounded = fs.identity!.list(root, 3000);
      assert.ok(failed(bounded) && bounded.errno === "E2BIG", name);
      const missing = fs.identity!.list(`${root}/nope`, 10);
      assert.ok(failed(missing) && missing.errno === "ENOENT", name);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

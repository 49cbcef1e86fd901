import assert from "node:assert/strict";
import { buildFdt, khoTree, versionProperty } from "../../tests/kho/fdt_builder.ts";
import { fakeFs, osError } from "./_fake_fs.ts";
import { decodeLuoVersion, HandoverError, readIncomingHandover } from "./kho.ts";

const DEBUG = "/fake/debug";
const FDT = `${DEBUG}/kho/in/fdt`;

Deno.test("kho: finds the orchestrator node and decodes its native-endian version", async () => {
  const { fs } = fakeFs({ [FDT]: { contents: khoTree(versionProperty(1, 3)) } });
  assert.deepEqual(await readIncomingHandover(fs, DEBUG), {
    status: "present",
    file: FDT,
    node: "liveupdate_orchestrator",
    version: { major: 1, minor: 3 },
  });
});

Deno.test("kho: a node without a version property is present with version null", async () => {
  const { fs } = fakeFs({ [FDT]: { contents: khoTree(null) } });
  const found = await readIncomingHandover(fs, DEBUG);
  assert.equal(found.status, "present");
  assert.equal(found.status === "present" && found.version, null);
});

Deno.test("kho: a version of the wrong length is a HandoverError", async () => {
  for (const length of [0, 4, 7, 9, 16]) {
    const { fs } = fakeFs({ [FDT]: { contents: khoTree(new Uint8Array(length)) } });
    await assert.rejects(
      readIncomingHandover(fs, DEBUG),
      (error: unknown) => {
        assert.ok(error instanceof HandoverError);
        assert.match(error.message, new RegExp(`has ${length} bytes, not 8`));
        assert.equal(error.file, FDT);
        return true;
      },
    );
  }
  assert.throws(() => decodeLuoVersion(new Uint8Array(7), "x"), HandoverError);
});

Deno.test("kho: a tree without the node means an ordinary boot", async () => {
  const { fs } = fakeFs({
    [FDT]: { contents: buildFdt({ name: "", properties: { compatible: "kho-v1" } }) },
  });
  const found = await readIncomingHandover(fs, DEBUG);
  assert.equal(found.status, "absent");
  assert.match(found.status === "absent" ? found.detail : "", /holds no liveupdate_orchestrator/);
});

Deno.test("kho: no incoming tree, no KHO debugfs, or an unreadable tree", async () => {
  let found = await readIncomingHandover(fakeFs({ [`${DEBUG}/kho/out/fdt`]: "" }).fs, DEBUG);
  assert.equal(found.status, "absent");
  found = await readIncomingHandover(fakeFs({ [`${DEBUG}/x`]: "" }).fs, DEBUG);
  assert.equal(found.status, "unavailable");
  assert.match(found.status === "unavailable" ? found.detail : "", /debugfs is not mounted/);
  found = await readIncomingHandover(
    fakeFs({ [FDT]: { contents: "", readError: osError("EACCES") } }).fs,
    DEBUG,
  );
  assert.equal(found.status, "unavailable");
  assert.match(found.status === "unavailable" ? found.detail : "", /cannot be read \(EACCES\)/);
});

Deno.test("kho: a malformed tree is a HandoverError naming the file", async () => {
  for (const contents of [new Uint8Array(3), khoTree().subarray(0, 50), new Uint8Array(64)]) {
    await assert.rejects(
      readIncomingHandover(fakeFs({ [FDT]: { contents } }).fs, DEBUG),
      (error: unknown) => {
        assert.ok(error instanceof HandoverError);
        assert.match(error.message, /\/fake\/debug\/kho\/in\/fdt is not a valid device tree/);
        return true;
      },
    );
  }
});

Deno.test("kho: the node may live in a sub-tree; non-FDT sub-blobs are skipped", async () => {
  const { fs } = fakeFs({
    [FDT]: { contents: buildFdt({ name: "", properties: { compatible: "kho-v1" } }) },
    [`${DEBUG}/kho/in/sub_fdts/kexec-metadata`]: { contents: new Uint8Array([1, 2, 3, 4, 5]) },
    [`${DEBUG}/kho/in/sub_fdts/LUO`]: { contents: khoTree(versionProperty(2, 1)) },
  });
  const found = await readIncomingHandover(fs, DEBUG);
  assert.deepEqual(found, {
    status: "present",
    file: `${DEBUG}/kho/in/sub_fdts/LUO`,
    node: "liveupdate_orchestrator",
    version: { major: 2, minor: 1 },
  });
});

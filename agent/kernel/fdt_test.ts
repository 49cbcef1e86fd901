import assert from "node:assert/strict";
import { buildFdt, khoTree, versionProperty } from "../../tests/kho/fdt_builder.ts";
import { FdtError, findNodes, parseFdt } from "./fdt.ts";

function setU32(blob: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = blob.slice();
  new DataView(copy.buffer).setUint32(offset, value >>> 0, false);
  return copy;
}

function u32(blob: Uint8Array, offset: number): number {
  return new DataView(blob.buffer, blob.byteOffset).getUint32(offset, false);
}

const TEXT = new TextDecoder();

Deno.test("fdt: parses nodes, properties and children", () => {
  const blob = buildFdt({
    name: "",
    properties: { compatible: "kho-v1", empty: new Uint8Array() },
    children: [
      { name: "a@1", properties: { x: new Uint8Array([1, 2, 3]) }, children: [{ name: "deep" }] },
      { name: "b" },
    ],
  });
  const { root, version } = parseFdt(blob);
  assert.equal(version, 17);
  assert.equal(root.name, "");
  assert.equal(TEXT.decode(root.properties.get("compatible")), "kho-v1\0");
  assert.equal(root.properties.get("empty")?.length, 0);
  assert.deepEqual(root.children.map((child) => child.name), ["a@1", "b"]);
  assert.deepEqual([...root.children[0]!.properties.get("x")!], [1, 2, 3]);
  assert.equal(root.children[0]!.children[0]!.name, "deep");
  assert.equal(findNodes(root, "a").length, 1);
  assert.equal(findNodes(root, "deep").length, 1);
  assert.equal(findNodes(root, "nope").length, 0);
});

Deno.test("fdt: property values stay valid when the caller reuses its buffer", () => {
  const blob = khoTree(versionProperty(3, 4));
  const { root } = parseFdt(blob);
  blob.fill(0);
  assert.deepEqual(
    root.children[1]!.properties.get("version"),
    versionProperty(3, 4),
  );
});

Deno.test("fdt: version 16 (no struct size) parses too", () => {
  const blob = setU32(khoTree(), 20, 16);
  assert.equal(parseFdt(blob).version, 16);
});

function fails(blob: Uint8Array, pattern: RegExp): void {
  assert.throws(() => parseFdt(blob), (error: unknown) => {
    assert.ok(error instanceof FdtError, `not an FdtError: ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("fdt: rejects wrong magic, truncation and bad header fields", () => {
  const blob = khoTree();
  fails(new Uint8Array(), /shorter than an FDT header/);
  fails(blob.subarray(0, 39), /shorter than an FDT header/);
  fails(setU32(blob, 0, 0xfeedd00d), /Magic 0xfeedd00d is not/);
  fails(blob.subarray(0, blob.length - 1), /truncated/);
  fails(blob.subarray(0, 60), /truncated/);
  fails(setU32(blob, 4, 12), /Header says the blob has 12 bytes/);
  fails(setU32(blob, 20, 15), /version 15 .* not supported/);
  fails(setU32(blob, 24, 18), /not supported/);
});

Deno.test("fdt: rejects huge or misaligned offsets and sizes", () => {
  const blob = khoTree();
  for (const offset of [8, 12, 32, 36]) {
    for (const value of [0xffffffff, 0x80000000, blob.length + 1, 0x7fffffff]) {
      assert.throws(() => parseFdt(setU32(blob, offset, value)), FdtError);
    }
  }
  fails(setU32(blob, 8, 3), /outside the blob|not 4-byte aligned/);
  fails(setU32(blob, 8, u32(blob, 8) + 2), /not 4-byte aligned/);
});

Deno.test("fdt: rejects a bad structure block", () => {
  const blob = khoTree();
  const structOffset = u32(blob, 8);
  const structSize = u32(blob, 36);
  // The first token is not BEGIN_NODE.
  fails(setU32(blob, structOffset, 7), /Unknown token 0x7/);
  fails(setU32(blob, structOffset, 2), /END_NODE without a node/);
  fails(setU32(blob, structOffset, 3), /property outside any node/);
  fails(setU32(blob, structOffset, 9), /No root node/);
  // The struct block is cut short: the last tokens are missing.
  fails(setU32(blob, 36, structSize - 4), /runs past its block/);
  fails(setU32(blob, 36, structSize - 8), /runs past its block/);
  // END replaced by a second root.
  fails(
    setU32(blob, structOffset + structSize - 4, 1),
    /second root node|runs past|no terminating/,
  );
});

Deno.test("fdt: rejects a property whose length or name offset is out of range", () => {
  const blob = buildFdt({ name: "", properties: { p: new Uint8Array([1, 2, 3, 4]) } });
  const structOffset = u32(blob, 8);
  // BEGIN_NODE "" (4 + 4 bytes), then PROP len nameoff.
  const prop = structOffset + 8;
  assert.equal(u32(blob, prop), 3);
  fails(setU32(blob, prop + 4, 0xfffffff0), /runs past the structure block/);
  fails(setU32(blob, prop + 4, 1000), /runs past the structure block/);
  fails(setU32(blob, prop + 8, 0xffffffff), /outside the strings block/);
  fails(setU32(blob, prop + 8, u32(blob, 32)), /outside the strings block/);
});

Deno.test("fdt: rejects names without NUL and deep nesting", () => {
  const blob = buildFdt({ name: "", properties: { name: "x" } });
  // Strings block without its NUL: shrink size_dt_strings by one.
  fails(setU32(blob, 32, u32(blob, 32) - 1), /no terminating NUL/);
  let node = { name: "n", children: [] as { name: string; children: unknown[] }[] };
  const root = node;
  for (let i = 0; i < 70; i++) {
    const child = { name: `n${i}`, children: [] };
    node.children.push(child);
    node = child;
  }
  fails(buildFdt(root as never), /nest deeper than 64/);
});

/** A deterministic PRNG (mulberry32), so a failure can be reproduced from its seed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("fdt: fuzz — 20,000 random and mutated blobs give a tree or an FdtError, nothing else", () => {
  const seeds = [
    khoTree(),
    khoTree(versionProperty(1, 7)),
    buildFdt({
      name: "",
      properties: { compatible: "kho-v1", a: "x", b: new Uint8Array(13) },
      children: [{ name: "x@0", children: [{ name: "y", properties: { c: "zz" } }] }],
    }),
  ];
  const next = random(0x5eed);
  const pick = (n: number) => Math.floor(next() * n);
  let parsed = 0;
  let rejected = 0;
  for (let i = 0; i < 20_000; i++) {
    let blob: Uint8Array;
    const kind = i % 5;
    if (kind === 0) {
      blob = new Uint8Array(pick(300));
      for (let j = 0; j < blob.length; j++) blob[j] = pick(256);
      if (blob.length >= 4 && next() < 0.5) new DataView(blob.buffer).setUint32(0, 0xd00dfeed);
    } else {
      blob = seeds[pick(seeds.length)]!.slice();
      const mutations = 1 + pick(8);
      for (let m = 0; m < mutations; m++) {
        const at = pick(blob.length);
        const how = pick(4);
        if (how === 0) blob[at] = pick(256);
        else if (how === 1) blob[at] = blob[at]! ^ (1 << pick(8));
        else if (how === 2 && at + 4 <= blob.length) {
          new DataView(blob.buffer).setUint32(
            at - (at % 4),
            [0, 1, 2, 3, 4, 9, 0xffffffff, 0x7fffffff, pick(2 ** 32)][pick(9)]!,
          );
        } else blob = blob.subarray(0, at);
      }
    }
    try {
      const { root } = parseFdt(blob);
      findNodes(root, "liveupdate_orchestrator");
      parsed++;
    } catch (error) {
      if (!(error instanceof FdtError)) {
        throw new Error(`Blob ${i} threw ${error}: ${[...blob].join(",")}`);
      }
      rejected++;
    }
  }
  assert.equal(parsed + rejected, 20_000);
  assert.ok(parsed > 0 && rejected > 0, `parsed ${parsed}, rejected ${rejected}`);
});

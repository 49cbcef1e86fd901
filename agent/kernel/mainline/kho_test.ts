import assert from "node:assert/strict";
import { denoKernelFs } from "../../host/deno_kernel_fs.ts";
import { buildFdt } from "./_fdt_builder_test_util.ts";
import {
  fdtRootProperties,
  isKhoTree,
  parseKexecMetadata,
  parseLuoHeader,
  readKhoTree,
} from "./kho.ts";

/** struct luo_ser as 7.3 writes it: "luo-v5" padded to 8, then three u64. */
function luoSer(compatible: string, number: bigint): Uint8Array<ArrayBuffer> {
  const length = (compatible.length + 1 + 7) & ~7;
  const blob = new Uint8Array(length + 24);
  blob.set(new TextEncoder().encode(compatible));
  new DataView(blob.buffer).setBigUint64(length, number, true);
  return blob;
}

function kexecMetadata(release: string, count: number): Uint8Array<ArrayBuffer> {
  const blob = new Uint8Array(73);
  const view = new DataView(blob.buffer);
  view.setUint32(0, 1, true);
  blob.set(new TextEncoder().encode(release), 4);
  view.setUint32(69, count, true);
  return blob;
}

Deno.test("FDT root properties, and a tree cut short as 7.3's kho/out/fdt is", () => {
  const blob = buildFdt({ compatible: "kho-v4", "preserved-memory-map": new Uint8Array(8) });
  const properties = fdtRootProperties(blob);
  assert.equal(new TextDecoder().decode(properties?.get("compatible")), "kho-v4\0");
  assert.equal(properties?.get("preserved-memory-map")?.length, 8);
  // debugfs shows fewer bytes than the tree's total size: the names are gone.
  const cut = blob.slice(0, blob.length - 20);
  assert.equal(fdtRootProperties(cut)?.get("compatible"), undefined);
  assert.equal(fdtRootProperties(new Uint8Array(10)), null);
  assert.equal(fdtRootProperties(new TextEncoder().encode("x".repeat(64))), null);
});

Deno.test("LUO header: the raw struct (7.3) and the FDT form (6.19), and garbage", () => {
  assert.deepEqual(parseLuoHeader(luoSer("luo-v5", 3n)), {
    compatible: "luo-v5",
    liveupdateNumber: 3,
  });
  const number = new Uint8Array(8);
  new DataView(number.buffer).setBigUint64(0, 2n, true);
  assert.deepEqual(
    parseLuoHeader(buildFdt({ compatible: "luo-v1", "liveupdate-number": number })),
    { compatible: "luo-v1", liveupdateNumber: 2 },
  );
  // What 7.3's kho/in/sub_fdts/LUO shows once the kernel freed it.
  assert.equal(
    parseLuoHeader(new TextEncoder().encode("root:x:0:0:root:/root:/bin/sh\n\0\0")),
    null,
  );
});

Deno.test("kexec metadata", () => {
  assert.deepEqual(parseKexecMetadata(kexecMetadata("7.3.4", 2)), {
    version: 1,
    previousRelease: "7.3.4",
    kexecCount: 2,
  });
  assert.equal(parseKexecMetadata(new Uint8Array(10)), null);
});

Deno.test("readKhoTree reads a debugfs-shaped folder and names what it could not read", async () => {
  const debugfs = await Deno.makeTempDir({ prefix: "liveupdate-mainline-kho-" });
  try {
    assert.match(
      (readKhoTree(denoKernelFs, debugfs, "in") as { reason: string }).reason,
      /not a kexec with KHO/,
    );
    await Deno.mkdir(`${debugfs}/kho/out/sub_fdts`, { recursive: true });
    const fdt = buildFdt({ compatible: "kho-v4" });
    await Deno.writeFile(`${debugfs}/kho/out/fdt`, fdt.slice(0, fdt.length - 8));
    await Deno.writeFile(`${debugfs}/kho/out/sub_fdts/LUO`, luoSer("luo-v5", 1n));
    await Deno.writeFile(`${debugfs}/kho/out/sub_fdts/kexec-metadata`, kexecMetadata("7.3.4", 1));
    const tree = readKhoTree(denoKernelFs, debugfs, "out");
    assert.ok(isKhoTree(tree));
    assert.equal(tree.kho, null);
    assert.deepEqual(tree.luo, { compatible: "luo-v5", liveupdateNumber: 1 });
    assert.equal(tree.hasLuo, true);
    assert.equal(tree.kexec?.previousRelease, "7.3.4");
    assert.match(tree.problems.join(), /debugfs shows \d+ of its \d+ bytes/);
  } finally {
    await Deno.remove(debugfs, { recursive: true });
  }
});

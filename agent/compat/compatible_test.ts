import assert from "node:assert/strict";
import type { KhoTree } from "../kernel/mainline/kho.ts";
import { CompatError } from "./compat_error.ts";
import { compareHandoverAbi, runningHandoverAbi, verifyHandover } from "./compatible.ts";
import { parseAbiMetadata } from "./metadata.ts";

const V73 = { kho: "kho-v4", luo: "luo-v5", fileHandlers: ["memfd-v2"] };

function tree(direction: "in" | "out", fields: Partial<KhoTree>): KhoTree {
  return {
    direction,
    directory: `/sys/kernel/debug/kho/${direction}`,
    kho: null,
    luo: null,
    hasLuo: false,
    kexec: null,
    problems: [],
    ...fields,
  };
}

Deno.test("liveupdate-abi metadata of a mainline kernel: compatible strings", () => {
  const parsed = parseAbiMetadata(
    "# 7.3\nKHO_COMPATIBLE=kho-v4\nLUO_COMPATIBLE=luo-v5\nLUO_FILE_HANDLERS=memfd-v2 memfd-v2\n" +
      "FUTURE=thing-v1\n",
    "f",
  );
  assert.deepEqual(parsed.compatible, V73);
  assert.equal(parsed.luoVersion, null);
  assert.deepEqual(parseAbiMetadata("LUO_COMPATIBLE=luo-v5\n", "f").compatible, {
    kho: null,
    luo: "luo-v5",
    fileHandlers: [],
  });
  for (
    const [text, pattern] of [
      ["LUO_COMPATIBLE=1.0\n", /LUO_COMPATIBLE "1\.0" is not a compatible string/],
      ["LUO_COMPATIBLE=luo-v5\nLUO_FILE_HANDLERS=memfd\n", /LUO_FILE_HANDLERS "memfd"/],
      ["KHO_COMPATIBLE=kho-v4\n", /no LUO_VERSION line .* no LUO_COMPATIBLE line/],
    ] as const
  ) {
    assert.throws(
      () => parseAbiMetadata(text, "/usr/lib/modules/7.3.4/liveupdate-abi"),
      (error) =>
        error instanceof CompatError &&
        error.message.startsWith("/usr/lib/modules/7.3.4/liveupdate-abi is malformed") &&
        pattern.test(error.message),
    );
  }
});

Deno.test("compatible, incompatible and unknown pairs", () => {
  assert.equal(compareHandoverAbi(V73, V73).verdict, "compatible");
  const newerLuo = compareHandoverAbi(V73, { ...V73, luo: "luo-v6" });
  assert.equal(newerLuo.verdict, "incompatible");
  assert.match(newerLuo.message, /luo luo-v5 here, luo-v6 there/);
  const noMemfd = compareHandoverAbi(V73, { ...V73, fileHandlers: [] });
  assert.equal(noMemfd.verdict, "incompatible");
  assert.match(noMemfd.message, /file-handler memfd memfd-v2 here, none there/);
  const unknown = compareHandoverAbi(V73, { kho: null, luo: "luo-v5", fileHandlers: ["memfd-v2"] });
  assert.equal(unknown.verdict, "unknown");
  assert.match(unknown.message, /kho is unknown for the target kernel/);
});

Deno.test("the running kernel's formats: debugfs wins over the metadata", () => {
  const out = tree("out", { luo: { compatible: "luo-v5", liveupdateNumber: 1 } });
  const { abi, problems } = runningHandoverAbi(out, { ...V73, luo: "luo-v4" });
  assert.deepEqual(abi, V73);
  assert.match(problems.join(), /says luo=luo-v4 but the kernel hands over luo-v5/);
  const none = runningHandoverAbi(
    { direction: "out", directory: "d", reason: "not present" },
    null,
  );
  assert.deepEqual(none.abi, { kho: null, luo: null, fileHandlers: [] });
  assert.equal(none.problems.length, 2);
});

Deno.test("after the kexec: the handover is verified against the record", () => {
  const expected = { release: "7.3.4", running: V73, target: V73, liveupdateNumber: 1 };
  const incoming = tree("in", {
    kho: "kho-v4",
    kexec: { version: 1, previousRelease: "7.3.4", kexecCount: 1 },
  });
  const good = verifyHandover(
    expected,
    incoming,
    tree("out", { luo: { compatible: "luo-v5", liveupdateNumber: 2 } }),
  );
  assert.ok(good.ok, JSON.stringify(good));
  // A cold boot or kexec_load: nothing taken over.
  const lost = verifyHandover(
    expected,
    { direction: "in", directory: "d", reason: "not present" },
    tree("out", { luo: { compatible: "luo-v5", liveupdateNumber: 1 } }),
  );
  assert.equal(lost.ok, false);
  assert.deepEqual(lost.checks.filter((c) => c.ok === false).map((c) => c.what), [
    "kho-in",
    "luo-taken-over",
  ]);
  const otherKernel = verifyHandover(
    { ...expected, release: "7.2.0" },
    incoming,
    tree("out", { luo: { compatible: "luo-v5", liveupdateNumber: 2 } }),
  );
  assert.deepEqual(otherKernel.checks.filter((c) => c.ok === false).map((c) => c.what), [
    "previous-release",
  ]);
});

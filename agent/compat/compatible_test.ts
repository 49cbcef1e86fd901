import assert from "node:assert/strict";
import { type Config, defaultsOf, SCHEMA } from "../config/mod.ts";
import type { KhoTree } from "../kernel/mainline/kho.ts";
import { assessCompatibility } from "./check.ts";
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

function configFor(modules: string, target: string, allowUnknown = false): Config {
  const base = defaultsOf(SCHEMA) as Record<string, Record<string, unknown>>;
  base.compat = { ...base.compat, modules_dir: modules, allow_unknown: allowUnknown };
  base.target = { ...base.target, kernel: target };
  return base as unknown as Config;
}

Deno.test("the mainline verdict: compatible strings of the running kernel (debugfs first) and the target", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-compat-mainline-" });
  try {
    const write = async (release: string, text: string | null) => {
      await Deno.mkdir(`${dir}/modules/${release}`, { recursive: true });
      // The image's release comes from its path (<modules_dir>/<release>/vmlinuz).
      await Deno.writeTextFile(`${dir}/modules/${release}/vmlinuz`, "not a bzImage");
      if (text !== null) await Deno.writeTextFile(`${dir}/modules/${release}/liveupdate-abi`, text);
    };
    const metadata = "KHO_COMPATIBLE=kho-v4\nLUO_COMPATIBLE=luo-v5\nLUO_FILE_HANDLERS=memfd-v2\n";
    await write("7.3.4", metadata);
    await write("7.4.0", metadata.replace("luo-v5", "luo-v6"));
    await write("7.3.5", "LUO_COMPATIBLE=luo-v5\n");
    await write("7.3.6", "LUO_COMPATIBLE=luo 5\n");
    await write("7.9.9", null);
    const assess = async (target: string, allowUnknown = false) =>
      await assessCompatibility({
        fs: Deno,
        releases: { osRelease: () => "7.3.4" },
        config: configFor(`${dir}/modules`, `${dir}/modules/${target}/vmlinuz`, allowUnknown),
        backend: "mainline",
        outgoing: tree("out", { luo: { compatible: "luo-v5", liveupdateNumber: 1 }, hasLuo: true }),
      });
    const same = await assess("7.3.4");
    assert.equal(same.verdict.outcome, "compatible", same.verdict.sentence);
    assert.deepEqual(same.running.compatible, V73);
    assert.deepEqual(same.target.compatible, V73);
    assert.equal(same.running.version, null);

    const newer = await assess("7.4.0");
    assert.equal(newer.verdict.outcome, "incompatible");
    assert.equal(newer.verdict.allowed, false);
    assert.match(newer.verdict.sentence, /^Refused: .*luo luo-v5 here, luo-v6 there/);

    const partial = await assess("7.3.5");
    assert.equal(partial.verdict.outcome, "incompatible", partial.verdict.sentence);
    assert.match(partial.verdict.sentence, /file-handler memfd memfd-v2 here, none there/);

    const malformed = await assess("7.3.6");
    assert.equal(malformed.verdict.outcome, "invalid");
    assert.match(malformed.verdict.sentence, /target kernel's metadata: .*not a compatible string/);

    // No metadata for the target at all: unknown, allowed only by compat.allow_unknown.
    const none = await assess("7.9.9");
    assert.equal(none.verdict.outcome, "unknown");
    assert.equal(none.verdict.allowed, false);
    assert.match(none.verdict.sentence, /compat\.allow_unknown/);
    const allowed = await assess("7.9.9", true);
    assert.equal(allowed.verdict.allowed, true);
    assert.equal(allowed.verdict.override, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { CompatError } from "./compat_error.ts";
import { parseAbiMetadata, readAbiMetadata } from "./metadata.ts";
import { parseLuoVersion } from "./version.ts";

Deno.test("metadata: LUO_VERSION with comments, blank lines and extra keys", () => {
  const parsed = parseAbiMetadata(
    "# LUO ABI of this kernel\n\nLUO_VERSION=1.2\r\nLUO_COMPATIBLE=luo-v1\n",
    "/m/6.1/liveupdate-abi",
  );
  assert.deepEqual(parsed.luoVersion, { major: 1, minor: 2 });
  assert.equal(parsed.keys.LUO_COMPATIBLE, "luo-v1");
});

Deno.test("metadata: malformed files are CompatErrors naming the file and the fault", () => {
  const cases: [string, RegExp][] = [
    ["", /has no LUO_VERSION line/],
    ["# only a comment\n", /has no LUO_VERSION line/],
    ["LUO_VERSION=1\n", /"1" is not MAJOR\.MINOR/],
    ["LUO_VERSION=1.0.0\n", /is not MAJOR\.MINOR/],
    ["LUO_VERSION= 1.0\n", /is not MAJOR\.MINOR/],
    ["LUO_VERSION=01.0\n", /is not MAJOR\.MINOR/],
    ["LUO_VERSION=4294967296.0\n", /is not MAJOR\.MINOR/],
    ["LUO_VERSION=1.0\nLUO_VERSION=1.1\n", /line 2 sets LUO_VERSION a second time/],
    ["luo_version=1.0\n", /line 1 "luo_version=1\.0" is not KEY=VALUE/],
    ["garbage\n", /line 1 "garbage" is not KEY=VALUE/],
    ["LUO_VERSION=1.0\nX=a\tb\n", /line 2 holds a control character/],
    ["LUO_VERSION=1.0\n" + "#".repeat(5000), /more than 4096/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseAbiMetadata(text, "/m/r/liveupdate-abi"), (error: unknown) => {
      assert.ok(error instanceof CompatError);
      assert.equal(error.source, "/m/r/liveupdate-abi");
      assert.match(error.message, /^\/m\/r\/liveupdate-abi is malformed: /);
      assert.match(error.message, pattern);
      return true;
    });
  }
});

Deno.test("metadata: a missing file is undefined; binary junk is malformed", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-compat-metadata-" });
  try {
    await Deno.mkdir(`${root}/a`);
    await Deno.mkdir(`${root}/b`);
    await Deno.writeTextFile(`${root}/a/liveupdate-abi`, "LUO_VERSION=1.0\n");
    await Deno.writeFile(`${root}/b/liveupdate-abi`, new Uint8Array([0xff, 0xfe, 0x00]));
    assert.deepEqual((await readAbiMetadata(Deno, root, "a"))?.luoVersion, {
      major: 1,
      minor: 0,
    });
    assert.equal(await readAbiMetadata(Deno, root, "c"), undefined);
    await assert.rejects(readAbiMetadata(Deno, root, "b"), /is malformed: it is not UTF-8 text/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("versions: MAJOR.MINOR decimal u32 only", () => {
  assert.deepEqual(parseLuoVersion("0.0"), { major: 0, minor: 0 });
  assert.deepEqual(parseLuoVersion("4294967295.7"), { major: 4294967295, minor: 7 });
  for (const bad of ["", "1", "1.", ".1", "a.b", "-1.0", "1.0 ", "+1.0", "1e3.0", "00.1"]) {
    assert.equal(parseLuoVersion(bad), undefined, bad);
  }
});

import assert from "node:assert/strict";
import { fakeBzImage } from "../../tests/kho/bzimage.ts";
import { bzImageVersionString, isRelease, runningRelease, targetRelease } from "./release.ts";

const VERSION = "6.14.0-lu1 (builder@example) #1 SMP PREEMPT_DYNAMIC Thu Mar 20 2025";

Deno.test("bzImage: the header's version string", () => {
  assert.equal(bzImageVersionString(fakeBzImage({ version: VERSION })), VERSION);
  assert.equal(bzImageVersionString(fakeBzImage()), undefined, "no string at the pointer");
  assert.equal(bzImageVersionString(fakeBzImage({ version: VERSION, pointer: 0 })), undefined);
  assert.equal(
    bzImageVersionString(fakeBzImage({ version: VERSION, protocol: 0x01ff })),
    undefined,
  );
  assert.equal(
    bzImageVersionString(fakeBzImage({ version: VERSION, pointer: 0xfff0 })),
    undefined,
    "pointer past the setup sectors",
  );
  const noMagic = fakeBzImage({ version: VERSION });
  noMagic[0x202] = 0;
  assert.equal(bzImageVersionString(noMagic), undefined);
  assert.equal(bzImageVersionString(new Uint8Array(10)), undefined);
  const control = fakeBzImage({ version: "6.1\x01x" });
  assert.equal(bzImageVersionString(control), undefined);
});

Deno.test("releases: usable as a directory name only", () => {
  assert.ok(isRelease("6.14.0-1-amd64"));
  assert.ok(isRelease("6.1.0+debug~rc1"));
  for (const bad of ["", "..", ".hidden", "a/b", "6.1 x", "a\0b", "x".repeat(200)]) {
    assert.equal(isRelease(bad), false, bad);
  }
});

Deno.test("running release: from the host, or why not", () => {
  assert.deepEqual(runningRelease({ osRelease: () => "6.1.0-9-amd64" }), {
    release: "6.1.0-9-amd64",
    source: "uname",
  });
  const denied = runningRelease({
    osRelease: () => {
      throw new Deno.errors.NotCapable("Requires sys access to osRelease");
    },
  });
  assert.equal(denied.release, null);
  assert.match(denied.release === null ? denied.problem : "", /cannot be read \(Requires sys/);
  assert.equal(runningRelease({ osRelease: () => "../../etc" }).release, null);
});

Deno.test("target release: header first, file name as fallback, disagreement noted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-compat-release-" });
  try {
    const modules = `${dir}/modules`;
    await Deno.mkdir(`${modules}/6.15.2-lu`, { recursive: true });
    const write = (name: string, bytes: Uint8Array) => Deno.writeFile(`${dir}/${name}`, bytes);
    await write("vmlinuz-6.14.0-lu1", fakeBzImage({ version: VERSION }));
    await write("vmlinuz-6.99", fakeBzImage({ version: VERSION }));
    await write("vmlinuz-6.13.0", new Uint8Array(100));
    await write("kernel.img", fakeBzImage({ version: VERSION, size: 0x20000 }));
    await write("junk.img", new Uint8Array(100));
    await Deno.writeFile(`${modules}/6.15.2-lu/vmlinuz`, new Uint8Array(100));

    assert.deepEqual(await targetRelease(Deno, `${dir}/vmlinuz-6.14.0-lu1`, modules), {
      release: "6.14.0-lu1",
      source: "image header",
    });
    assert.deepEqual(await targetRelease(Deno, `${dir}/kernel.img`, modules), {
      release: "6.14.0-lu1",
      source: "image header",
    });
    const disagree = await targetRelease(Deno, `${dir}/vmlinuz-6.99`, modules);
    assert.equal(disagree.release, "6.14.0-lu1");
    assert.match(
      disagree.release !== null ? disagree.note ?? "" : "",
      /suggests release "6\.99", but its boot header says "6\.14\.0-lu1"; the header is used/,
    );
    assert.deepEqual(await targetRelease(Deno, `${dir}/vmlinuz-6.13.0`, modules), {
      release: "6.13.0",
      source: "file name",
    });
    assert.deepEqual(await targetRelease(Deno, `${modules}/6.15.2-lu/vmlinuz`, modules), {
      release: "6.15.2-lu",
      source: "file name",
    });
    const junk = await targetRelease(Deno, `${dir}/junk.img`, modules);
    assert.match(junk.release === null ? junk.problem : "", /release of .*junk\.img is unknown/);
    const missing = await targetRelease(Deno, `${dir}/nope`, modules);
    assert.match(
      missing.release === null ? missing.problem : "",
      /does not exist \(target\.kernel\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

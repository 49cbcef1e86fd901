import assert from "node:assert/strict";
import { failed, readBounded } from "./device_fs.ts";
import { withEachFs } from "./_test_fixture.ts";

Deno.test("DeviceFs: both implementations answer alike", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-devfs-" });
  try {
    await Deno.mkdir(`${root}/dir`);
    await Deno.writeTextFile(`${root}/dir/file`, "hello\n");
    await Deno.symlink("../dir/file", `${root}/dir/link`);
    await Deno.mkdir(`${root}/dir/sub`);
    await withEachFs((fs, name) => {
      assert.equal(fs.kind(`${root}/dir`), "directory", name);
      assert.equal(fs.kind(`${root}/dir/file`), "file", name);
      assert.equal(fs.kind(`${root}/dir/link`), "symlink", name);
      assert.equal(fs.kind(`${root}/nope`), "missing", name);
      assert.equal(fs.kind(`${root}/dir/file/x`), "missing", name);

      const entries = fs.readDir(`${root}/dir`);
      assert.ok(!failed(entries), name);
      assert.deepEqual(
        entries.map((entry) => [entry.name, entry.isFile]).sort(),
        [["file", true], ["link", false], ["sub", false]],
        name,
      );
      const missing = fs.readDir(`${root}/nope`);
      assert.ok(failed(missing) && missing.errno === "ENOENT", name);

      assert.equal(fs.readLink(`${root}/dir/link`), "../dir/file", name);
      assert.ok(failed(fs.readLink(`${root}/nope`)), name);
      assert.ok(failed(fs.readLink(`${root}/dir/file`)), name);

      const buffer = new Uint8Array(7);
      const read = readBounded(fs, `${root}/dir/file`, buffer);
      assert.equal(read.kind, "ok", name);
      assert.equal(
        new TextDecoder().decode(read.kind === "ok" ? read.bytes : undefined),
        "hello\n",
      );
      assert.equal(readBounded(fs, `${root}/dir/file`, new Uint8Array(6)).kind, "too-big", name);
      assert.equal(readBounded(fs, `${root}/nope`, buffer).kind, "missing", name);
      assert.equal(readBounded(fs, `${root}/dir/file/x`, buffer).kind, "missing", name);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("DeviceFs: a large directory is listed completely", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-devfs-" });
  try {
    // More than one getdents64 buffer (64 KiB) of entries.
    const names = Array.from({ length: 3000 }, (_, i) => `+pci:0000:${String(i).padStart(6, "0")}`);
    for (const name of names) await Deno.writeTextFile(`${root}/${name}`, "");
    await withEachFs((fs, name) => {
      const entries = fs.readDir(root);
      assert.ok(!failed(entries));
      assert.deepEqual(entries.map((entry) => entry.name).sort(), names, name);
      assert.ok(entries.every((entry) => entry.isFile), name);
      const bounded = fs.readDir(root, 2999);
      assert.ok(failed(bounded) && bounded.errno === "E2BIG", name);
      assert.ok(!failed(fs.readDir(root, 3000)), name);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("DeviceFs (libc): a FIFO where a file should be does not hang the reader", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-devfs-" });
  try {
    const made = await new Deno.Command("mkfifo", { args: [`${root}/fifo`] }).output();
    assert.equal(made.code, 0);
    const { openLibc } = await import("../host/mod.ts");
    const { libcDeviceFs } = await import("./device_fs.ts");
    using libc = openLibc();
    const fs = libcDeviceFs(libc);
    assert.equal(fs.kind(`${root}/fifo`), "file");
    const read = readBounded(fs, `${root}/fifo`, new Uint8Array(16));
    // Non-blocking: nothing to read (0 bytes, or EAGAIN), but never a hang.
    assert.ok(read.kind === "ok" || read.kind === "failed");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

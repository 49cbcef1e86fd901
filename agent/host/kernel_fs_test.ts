import assert from "node:assert/strict";
import { denoErrno, denoKernelFs } from "./deno_kernel_fs.ts";
import { failed, type KernelFs, readBounded } from "./kernel_fs.ts";
import { openBeneath } from "./beneath.ts";
import { openLibc } from "./libc.ts";
import { libcKernelFs } from "./libc_kernel_fs.ts";

/** Runs `body` once with each implementation (the libc one is closed after). */
async function withEachFs(body: (fs: KernelFs, name: string) => void | Promise<void>) {
  await body(denoKernelFs, "deno");
  using libc = openLibc();
  await body(libcKernelFs(libc), "libc");
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

Deno.test("KernelFs: both implementations answer alike", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-kernelfs-" });
  try {
    await Deno.mkdir(`${root}/dir`);
    await Deno.writeTextFile(`${root}/dir/file`, "hello\n");
    await Deno.symlink("../dir/file", `${root}/dir/link`);
    await Deno.symlink("sub", `${root}/dir/sublink`);
    await Deno.mkdir(`${root}/dir/sub`);
    await withEachFs((fs, name) => {
      assert.equal(fs.kind(`${root}/dir`), "directory", name);
      assert.equal(fs.kind(`${root}/dir/file`), "file", name);
      assert.equal(fs.kind(`${root}/dir/link`), "symlink", name);
      assert.equal(fs.kind(`${root}/nope`), "missing", name);
      assert.equal(fs.kind(`${root}/dir/file/x`), "missing", name);

      assert.deepEqual(fs.stat(`${root}/dir/file`), { type: "file", size: 6 }, name);
      assert.deepEqual(fs.stat(`${root}/dir/link`), { type: "file", size: 6 }, name);
      assert.equal((fs.stat(`${root}/dir/sublink`) as { type: string }).type, "directory", name);
      assert.deepEqual(fs.stat("/dev/null"), { type: "char-device", size: 0 }, name);
      assert.deepEqual(fs.stat(`${root}/nope`), { errno: "ENOENT" }, name);
      assert.deepEqual(fs.stat(`${root}/dir/file/x`), { errno: "ENOTDIR" }, name);

      const entries = fs.readDir(`${root}/dir`);
      assert.ok(!failed(entries), name);
      assert.deepEqual(
        entries.map((entry) => [entry.name, entry.isFile, entry.isDirectory]).sort(),
        [["file", true, false], ["link", false, false], ["sub", false, true], [
          "sublink",
          false,
          false,
        ]],
        name,
      );
      assert.deepEqual(fs.readDir(`${root}/nope`), { errno: "ENOENT" }, name);
      assert.deepEqual(fs.readDir(`${root}/dir/file`), { errno: "ENOTDIR" }, name);

      assert.equal(fs.readLink(`${root}/dir/link`), "../dir/file", name);
      assert.deepEqual(fs.readLink(`${root}/nope`), { errno: "ENOENT" }, name);
      assert.deepEqual(fs.readLink(`${root}/dir/file`), { errno: "EINVAL" }, name);

      const buffer = new Uint8Array(7);
      const read = readBounded(fs, `${root}/dir/file`, buffer);
      assert.equal(read.kind, "ok", name);
      assert.equal(decoder.decode(read.kind === "ok" ? read.bytes : undefined), "hello\n");
      assert.equal(readBounded(fs, `${root}/dir/file`, new Uint8Array(6)).kind, "too-big", name);
      assert.equal(readBounded(fs, `${root}/nope`, buffer).kind, "missing", name);
      assert.equal(readBounded(fs, `${root}/dir/file/x`, buffer).kind, "missing", name);
      assert.deepEqual(fs.read(`${root}/dir`, buffer), { errno: "EISDIR" }, name);

      const whole = fs.readFile(`${root}/dir/link`, 6);
      assert.ok(!failed(whole), name);
      assert.equal(decoder.decode(whole), "hello\n", name);
      assert.deepEqual(fs.readFile(`${root}/dir/file`, 5), { errno: "EFBIG" }, name);
      assert.deepEqual(fs.readFile(`${root}/nope`, 5), { errno: "ENOENT" }, name);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("KernelFs: write never creates or truncates, and reports the errno", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-kernelfs-" });
  try {
    await withEachFs(async (fs, name) => {
      await Deno.writeTextFile(`${root}/attr`, "0000\n");
      assert.equal(fs.write(`${root}/attr`, encoder.encode("1")), 1, name);
      // One write at offset 0, no truncation: what a sysfs attribute receives.
      assert.equal(await Deno.readTextFile(`${root}/attr`), "1000\n", name);
      assert.deepEqual(fs.write(`${root}/missing`, encoder.encode("1")), { errno: "ENOENT" });
      assert.equal(fs.kind(`${root}/missing`), "missing", name);
      assert.deepEqual(fs.write(root, encoder.encode("1")), { errno: "EISDIR" }, name);
      // /dev/full refuses every write with ENOSPC: the write's own errno comes through.
      assert.deepEqual(fs.write("/dev/full", encoder.encode("1")), { errno: "ENOSPC" }, name);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("KernelFs: a write beneath a directory never follows a symlink or leaves it", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-kernelfs-" });
  try {
    const sys = `${root}/sys`;
    const outside = `${root}/outside`;
    await Deno.mkdir(`${sys}/devices/a/liveupdate`, { recursive: true });
    await Deno.mkdir(`${outside}/liveupdate`, { recursive: true });
    await Deno.writeTextFile(`${sys}/devices/a/liveupdate/requested`, "0\n");
    await Deno.writeTextFile(`${outside}/liveupdate/requested`, "0\n");
    await Deno.writeTextFile(`${outside}/shadow`, "secret\n");
    // A device directory that is a symlink, a liveupdate directory that is one, and
    // an attribute that is one: each leads outside <sysfs>.
    await Deno.symlink(outside, `${sys}/devices/link`);
    await Deno.mkdir(`${sys}/devices/b`);
    await Deno.symlink(`${outside}/liveupdate`, `${sys}/devices/b/liveupdate`);
    await Deno.mkdir(`${sys}/devices/c/liveupdate`, { recursive: true });
    await Deno.symlink(`${outside}/shadow`, `${sys}/devices/c/liveupdate/requested`);
    const one = encoder.encode("1");
    await withEachFs((fs, name) => {
      const write = (path: string) => fs.write(path, one, { beneath: sys });
      assert.equal(write(`${sys}/devices/a/liveupdate/requested`), 1, name);
      const refusedDir = write(`${sys}/devices/link/liveupdate/requested`);
      assert.ok(failed(refusedDir) && ["ELOOP", "ENOTDIR"].includes(refusedDir.errno), name);
      assert.deepEqual(write(`${sys}/devices/b/liveupdate/requested`), { errno: "ELOOP" }, name);
      assert.deepEqual(write(`${sys}/devices/c/liveupdate/requested`), { errno: "ELOOP" }, name);
      assert.deepEqual(write(`${sys}/devices/a/../../outside/shadow`), { errno: "EXDEV" }, name);
      assert.deepEqual(write(`${sys}//devices/a/liveupdate/requested`), { errno: "EXDEV" }, name);
      assert.deepEqual(write(`${outside}/shadow`), { errno: "EXDEV" }, name);
      assert.deepEqual(write(sys), { errno: "EXDEV" }, name);
      assert.deepEqual(write(`${sys}/devices/missing/liveupdate/requested`), { errno: "ENOENT" });
      // Without `beneath` a symlink is followed (reads of sysfs links rely on that).
    });
    assert.equal(await Deno.readTextFile(`${outside}/liveupdate/requested`), "0\n");
    assert.equal(await Deno.readTextFile(`${outside}/shadow`), "secret\n");
    assert.equal(await Deno.readTextFile(`${sys}/devices/a/liveupdate/requested`), "1\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("openBeneath: the fallback without openat2 refuses the same paths", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-kernelfs-" });
  try {
    await Deno.mkdir(`${root}/a/liveupdate`, { recursive: true });
    await Deno.writeTextFile(`${root}/a/liveupdate/requested`, "0\n");
    await Deno.mkdir(`${root}/outside`);
    await Deno.writeTextFile(`${root}/outside/requested`, "0\n");
    await Deno.mkdir(`${root}/b`);
    await Deno.symlink(`${root}/outside`, `${root}/b/liveupdate`);
    await Deno.symlink(`${root}/outside/requested`, `${root}/a/liveupdate/link`);
    using real = openLibc();
    // A binding whose openat2 is missing (ENOSYS), as on kernels before 5.6.
    const libc = {
      ...real,
      errno: () => noOpenat2 ? 38 : real.errno(),
      symbols: {
        ...real.symbols,
        syscall_openat2: () => {
          noOpenat2 = true;
          return -1n;
        },
        openat: (...args: Parameters<typeof real.symbols.openat>) => {
          noOpenat2 = false;
          return real.symbols.openat(...args);
        },
      },
    } as typeof real;
    let noOpenat2 = false;
    const dir = openBeneath(libc, root);
    assert.ok(!failed(dir));
    try {
      const fd = dir.open("a/liveupdate/requested", 1);
      assert.ok(typeof fd === "number" && fd >= 0);
      real.symbols.close(fd);
      assert.deepEqual(dir.open("b/liveupdate/requested", 1), { errno: "ENOTDIR" });
      assert.deepEqual(dir.open("a/liveupdate/link", 1), { errno: "ELOOP" });
      assert.deepEqual(dir.open("a/../outside/requested", 1), { errno: "EXDEV" });
      assert.deepEqual(dir.open("/etc/passwd", 1), { errno: "EXDEV" });
    } finally {
      dir.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("KernelFs: a large directory is listed completely", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-kernelfs-" });
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

Deno.test("KernelFs: a file larger than one read is read whole", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-kernelfs-" });
  try {
    const bytes = new Uint8Array(200_000).map((_, i) => i % 251);
    await Deno.writeFile(`${root}/blob`, bytes);
    await withEachFs((fs, name) => {
      assert.deepEqual(fs.readFile(`${root}/blob`, bytes.length), bytes, name);
      assert.deepEqual(fs.readFile(`${root}/blob`, bytes.length - 1), { errno: "EFBIG" }, name);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("KernelFs (libc): procfs and sysfs, which Deno's own API refuses without -A", () => {
  using libc = openLibc();
  const fs = libcKernelFs(libc);
  const release = fs.readFile("/proc/sys/kernel/osrelease", 4096);
  assert.ok(!failed(release));
  assert.equal(decoder.decode(release).trim(), Deno.osRelease());
  assert.equal(fs.kind("/sys/kernel"), "directory");
  assert.equal((fs.stat("/proc/uptime") as { type: string }).type, "file");
});

Deno.test("KernelFs (libc): paths it cannot pass to the kernel", () => {
  using libc = openLibc();
  const fs = libcKernelFs(libc);
  assert.deepEqual(fs.stat("/tmp/a\0b"), { errno: "EINVAL" });
  assert.deepEqual(fs.readFile(`/${"x".repeat(5000)}`, 10), { errno: "ENAMETOOLONG" });
  assert.equal(fs.kind("/tmp/a\0b"), "missing");
});

Deno.test("KernelFs (libc): a FIFO where a file should be hangs neither reads nor writes", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-kernelfs-" });
  try {
    const made = await new Deno.Command("mkfifo", { args: [`${root}/fifo`] }).output();
    assert.equal(made.code, 0);
    using libc = openLibc();
    const fs = libcKernelFs(libc);
    assert.equal(fs.kind(`${root}/fifo`), "file");
    assert.equal((fs.stat(`${root}/fifo`) as { type: string }).type, "other");
    const read = readBounded(fs, `${root}/fifo`, new Uint8Array(16));
    // Non-blocking: nothing to read (0 bytes, or EAGAIN), but never a hang.
    assert.ok(read.kind === "ok" || read.kind === "failed");
    const whole = fs.readFile(`${root}/fifo`, 16);
    assert.ok(!failed(whole) ? whole.length === 0 : whole.errno === "EAGAIN");
    // Nobody reads the FIFO: opening it for writing fails at once instead of waiting.
    assert.deepEqual(fs.write(`${root}/fifo`, new TextEncoder().encode("1")), { errno: "ENXIO" });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("denoErrno: the errno number wins; Deno's permission refusals are rethrown", () => {
  assert.equal(denoErrno(new Error("No such device (os error 19)")), "ENODEV");
  assert.equal(
    denoErrno(Object.assign(new TypeError("Invalid argument"), { code: "EINVAL" })),
    "EINVAL",
  );
  assert.equal(denoErrno(new Deno.errors.NotFound("gone")), "ENOENT");
  assert.equal(denoErrno(new Error("strange")), "EIO");
  assert.throws(
    () => denoErrno(new Deno.errors.NotCapable("Requires all access")),
    Deno.errors.NotCapable,
  );
});

import assert from "node:assert/strict";
import { openLibc } from "../host/mod.ts";
import { KernelError } from "./kernel_error.ts";
import { holdRequestedMany, readRequestedMany, setRequestedMany } from "./rfc_v1_bulk.ts";

async function tree() {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-bulk-" });
  await Deno.mkdir(`${root}/kernel/liveupdate`, { recursive: true });
  await Deno.writeTextFile(`${root}/kernel/liveupdate/state`, "normal\n");
  for (const device of ["a", "a/b", "c"]) {
    await Deno.mkdir(`${root}/devices/${device}/liveupdate`, { recursive: true });
    await Deno.writeTextFile(`${root}/devices/${device}/liveupdate/requested`, "0\n");
  }
  await Deno.writeTextFile(`${root}/devices/c/liveupdate/requested`, "1\n");
  return root;
}

Deno.test("bulk: reads requested of many devices; a failing device is its KernelError", async () => {
  const root = await tree();
  try {
    await Deno.writeTextFile(`${root}/devices/a/b/liveupdate/requested`, "yes\n");
    using libc = openLibc();
    const results = readRequestedMany(libc, `${root}/devices`, ["a", "c", "gone", "a/b", "../x"]);
    assert.equal(results[0], false);
    assert.equal(results[1], true);
    assert.ok(results[2] instanceof KernelError);
    assert.equal((results[2] as KernelError).errno, "ENOENT");
    assert.match(
      (results[2] as KernelError).message,
      /Device "gone" has no .*: the device was removed/,
    );
    assert.ok(results[3] instanceof KernelError);
    assert.match((results[3] as KernelError).message, /holds "yes\\n", not "0" or "1"/);
    assert.ok(results[4] instanceof KernelError);
    assert.match((results[4] as KernelError).message, /has a "\.\." component/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("bulk: writes exactly 1 or 0, never creates a file, reports each failure", async () => {
  const root = await tree();
  try {
    using libc = openLibc();
    const results = setRequestedMany(
      libc,
      `${root}/devices`,
      `${root}/kernel/liveupdate/state`,
      ["a", "gone", "a/b"],
      true,
    );
    assert.equal(results[0], null);
    assert.ok(results[1] instanceof KernelError);
    assert.equal(results[1]!.errno, "ENOENT");
    assert.equal(results[1]!.operation, "request");
    assert.equal(results[2], null);
    // Plain files: the byte overwrites "0" in place (no truncation), as sysfs takes it.
    assert.equal(await Deno.readTextFile(`${root}/devices/a/liveupdate/requested`), "1\n");
    await assert.rejects(() => Deno.stat(`${root}/devices/gone`), Deno.errors.NotFound);
    const cleared = setRequestedMany(
      libc,
      `${root}/devices`,
      `${root}/kernel/liveupdate/state`,
      ["c"],
      false,
    );
    assert.deepEqual(cleared, [null]);
    assert.equal(await Deno.readTextFile(`${root}/devices/c/liveupdate/requested`), "0\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("bulk: values other than the kernel's 0\\n/1\\n are parsed strictly; long paths fail cleanly", async () => {
  const root = await tree();
  try {
    await Deno.writeTextFile(`${root}/devices/a/liveupdate/requested`, "1");
    await Deno.writeTextFile(`${root}/devices/c/liveupdate/requested`, "01\n");
    using libc = openLibc();
    const long = "x/".repeat(2100) + "y";
    const results = readRequestedMany(libc, `${root}/devices`, ["a", "c", "a/b", long]);
    assert.equal(results[0], true, "a value without its newline is still the flag");
    assert.ok(results[1] instanceof KernelError);
    assert.match((results[1] as KernelError).message, /holds "01\\n", not "0" or "1"/);
    assert.equal(results[2], false);
    assert.ok(results[3] instanceof KernelError, "a path longer than PATH_MAX is an error");
    const written = setRequestedMany(
      libc,
      `${root}/devices`,
      `${root}/kernel/liveupdate/state`,
      [long, "a/b"],
      true,
    );
    assert.ok(written[0] instanceof KernelError);
    assert.equal(written[1], null);
    assert.equal(await Deno.readTextFile(`${root}/devices/a/b/liveupdate/requested`), "1\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("bulk: a flag that reads back differently after the write is reported", async () => {
  const root = await tree();
  try {
    // A plain file keeps the rest of its bytes: writing "1" over "0 \n" reads back "1 \n".
    await Deno.writeTextFile(`${root}/devices/a/liveupdate/requested`, "0 \n");
    using libc = openLibc();
    const [result] = setRequestedMany(
      libc,
      `${root}/devices`,
      `${root}/kernel/liveupdate/state`,
      ["a"],
      true,
    );
    assert.ok(result instanceof KernelError);
    assert.match(result.message, /After writing 1 to .* the kernel reads back "1 \\n"/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test("bulk: files held between reading and writing; bounded; every one closed", async () => {
  const root = await tree();
  try {
    using libc = openLibc();
    const devices = `${root}/devices`;
    const state = `${root}/kernel/liveupdate/state`;
    const before = openFds();
    // a and a/b read 0 (held for writing 1), c reads 1 (closed), "gone" fails.
    const held = holdRequestedMany(libc, devices, state, ["a", "c", "gone", "a/b"], true);
    assert.equal(held.flags[0], false);
    assert.equal(held.flags[1], true);
    assert.equal((held.flags[2] as KernelError).errno, "ENOENT");
    assert.equal(held.flags[3], false);
    assert.equal(openFds(), before + 2, "the two files to write are held");
    // Through the held files, and by path for the rest (c is written again, harmlessly).
    assert.deepEqual(held.write([0, 1, 3]), [null, null, null]);
    assert.equal(openFds(), before, "written files are closed");
    for (const device of ["a", "c", "a/b"]) {
      assert.equal(await Deno.readTextFile(`${devices}/${device}/liveupdate/requested`), "1\n");
    }
    const vanished = held.write([2]);
    assert.equal(vanished[0]!.errno, "ENOENT");
    held.close();

    // At most maxHeld files; the others are written by path. Unwritten ones are closed.
    const bounded = holdRequestedMany(libc, devices, state, ["a", "c", "a/b"], false, 1);
    assert.equal(openFds(), before + 1);
    assert.deepEqual(bounded.write([2]), [null]);
    assert.equal(await Deno.readTextFile(`${devices}/a/b/liveupdate/requested`), "0\n");
    assert.equal(openFds(), before + 1, "a is still held");
    bounded.close();
    assert.equal(openFds(), before);
    assert.equal(await Deno.readTextFile(`${devices}/a/liveupdate/requested`), "1\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("bulk: out of file descriptors, held files are given back and nothing fails", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-bulk-" });
  try {
    await Deno.mkdir(`${root}/kernel/liveupdate`, { recursive: true });
    await Deno.writeTextFile(`${root}/kernel/liveupdate/state`, "normal\n");
    const devices = Array.from({ length: 300 }, (_, i) => `d${i}`);
    for (const device of devices) {
      await Deno.mkdir(`${root}/devices/${device}/liveupdate`, { recursive: true });
      await Deno.writeTextFile(`${root}/devices/${device}/liveupdate/requested`, "0\n");
    }
    // A process limited to 200 open files holds (and writes) 300 flags.
    const script = `
      import { openLibc } from "${new URL("../host/mod.ts", import.meta.url).href}";
      import { holdRequestedMany } from "${new URL("./rfc_v1_bulk.ts", import.meta.url).href}";
      const devices = ${JSON.stringify(devices)};
      using libc = openLibc();
      const held = holdRequestedMany(libc, "${root}/devices", "${root}/kernel/liveupdate/state",
        devices, true);
      const read = held.flags.filter((flag) => flag === false).length;
      const written = held.write(devices.map((_, i) => i)).filter((r) => r === null).length;
      held.close();
      console.log(JSON.stringify({ read, written }));
    `;
    const out = await new Deno.Command("prlimit", {
      args: ["--nofile=200:200", Deno.execPath(), "eval", "--ext=ts", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), { read: 300, written: 300 });
    for (const device of devices) {
      assert.equal(
        await Deno.readTextFile(`${root}/devices/${device}/liveupdate/requested`),
        "1\n",
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("bulk: a requested flag reached through a symlink is refused, the target untouched", async () => {
  const root = await tree();
  const outside = await Deno.makeTempDir({ prefix: "liveupdate-bulk-outside-" });
  try {
    await Deno.mkdir(`${outside}/liveupdate`);
    await Deno.writeTextFile(`${outside}/liveupdate/requested`, "0\n");
    await Deno.writeTextFile(`${outside}/shadow`, "secret\n");
    // A device directory that is a symlink, and a requested attribute that is one.
    await Deno.symlink(outside, `${root}/devices/a/evil`);
    await Deno.remove(`${root}/devices/c/liveupdate/requested`);
    await Deno.symlink(`${outside}/shadow`, `${root}/devices/c/liveupdate/requested`);
    using libc = openLibc();
    const results = setRequestedMany(
      libc,
      `${root}/devices`,
      `${root}/kernel/liveupdate/state`,
      ["a/evil", "c", "a"],
      true,
    );
    for (const result of results.slice(0, 2)) {
      assert.ok(result instanceof KernelError);
      assert.equal(result.errno, "ELOOP");
      assert.match(result.message, /refused to write .*a symlink or "\.\." on the way/);
    }
    assert.equal(results[2], null);
    assert.equal(await Deno.readTextFile(`${outside}/liveupdate/requested`), "0\n");
    assert.equal(await Deno.readTextFile(`${outside}/shadow`), "secret\n");
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

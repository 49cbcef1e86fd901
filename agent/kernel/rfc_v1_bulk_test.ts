import assert from "node:assert/strict";
import { openLibc } from "../host/mod.ts";
import { KernelError } from "./kernel_error.ts";
import { readRequestedMany, setRequestedMany } from "./rfc_v1_bulk.ts";

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

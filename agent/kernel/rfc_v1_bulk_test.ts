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

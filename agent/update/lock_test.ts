import assert from "node:assert/strict";
import { openLibc } from "../host/mod.ts";
import { acquireUpdateLock, BusyError } from "./lock.ts";

Deno.test("the update lock excludes a second holder and is free after release", async () => {
  using libc = openLibc();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/update.lock`;
    const lock = acquireUpdateLock(libc, path);
    assert.equal((await Deno.readTextFile(path)).trim(), String(Deno.pid));
    // flock locks belong to the open file description: a second open conflicts.
    let error: unknown;
    try {
      acquireUpdateLock(libc, path).release();
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof BusyError);
    assert.equal(error.exitCode, 7);
    assert.match(error.message, new RegExp(`\\(pid ${Deno.pid}\\) holds`));
    lock.release();
    acquireUpdateLock(libc, path).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a killed holder leaves no stale lock", async () => {
  using libc = openLibc();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/update.lock`;
    // Another agent process takes the lock, says so, and is then killed.
    const lockModule = new URL("./lock.ts", import.meta.url).href;
    const hostModule = new URL("../host/mod.ts", import.meta.url).href;
    const script = `import { acquireUpdateLock } from "${lockModule}";
      import { openLibc } from "${hostModule}";
      acquireUpdateLock(openLibc(), ${JSON.stringify(path)});
      console.log("locked");
      await new Promise((r) => setTimeout(r, 120_000));`;
    const holder = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", script],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const { value } = await reader.read();
      reader.releaseLock();
      assert.equal(value?.trim(), "locked");
      assert.throws(() => acquireUpdateLock(libc, path), BusyError);
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
      await holder.stdout.cancel().catch(() => {});
    }
    acquireUpdateLock(libc, path).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a lock path that is a symlink is refused", async () => {
  using libc = openLibc();
  const dir = await Deno.makeTempDir();
  try {
    await Deno.symlink(`${dir}/elsewhere`, `${dir}/update.lock`);
    assert.throws(
      () => acquireUpdateLock(libc, `${dir}/update.lock`),
      /Cannot open the update lock .*ELOOP/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { writeFileAtomic } from "./atomic.ts";
import { StoreError } from "./store_error.ts";

Deno.test("writeFileAtomic replaces the file and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/record.json`;
    await writeFileAtomic(Deno, path, "one");
    await writeFileAtomic(Deno, path, "two");
    assert.equal(await Deno.readTextFile(path), "two");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["record.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed write keeps the old content and names the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/record.json`;
    await writeFileAtomic(Deno, path, "old");
    // A file system whose writes fail like a full disk.
    const full = {
      ...Deno,
      open: async (p: string | URL, o?: Deno.OpenOptions) => {
        const file = await Deno.open(p, o);
        return Object.assign(file, {
          write: () => {
            const error = new Error("No space left on device (os error 28)");
            Object.assign(error, { code: "ENOSPC" });
            return Promise.reject(error);
          },
        });
      },
    } as typeof Deno;
    const error = await writeFileAtomic(full, path, "new").catch((e) => e);
    assert.ok(error instanceof StoreError);
    assert.match(error.message, /^Cannot write ".*record\.json": the disk is full \(ENOSPC\)\./);
    assert.equal(await Deno.readTextFile(path), "old");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["record.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writing into a missing directory is a StoreError, not a crash", async () => {
  const error = await writeFileAtomic(Deno, "/nonexistent-dir-xyz/r.json", "x").catch((e) => e);
  assert.ok(error instanceof StoreError);
  assert.match(error.message, /it does not exist/);
});

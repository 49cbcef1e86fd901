import assert from "node:assert/strict";
import { writeFileAtomic } from "./atomic.ts";
import { AttemptStore } from "./attempts.ts";
import { ensurePrivateDir, readRecordFile } from "./private_dir.ts";
import { StoreError } from "./store_error.ts";

async function mkfifo(path: string): Promise<void> {
  const made = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.equal(made.code, 0);
}

Deno.test("a state directory that is a symlink is refused; its target is not touched", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-private-dir-" });
  try {
    await Deno.mkdir(`${dir}/elsewhere`, { mode: 0o755 });
    await Deno.chmod(`${dir}/elsewhere`, 0o755);
    await Deno.symlink(`${dir}/elsewhere`, `${dir}/state`);
    const store = new AttemptStore(Deno, `${dir}/state`);
    await assert.rejects(store.ensure(), (error: unknown) => {
      assert.ok(error instanceof StoreError);
      assert.match(error.message, /state directory \(paths\.state_dir\) ".*\/state" is a symlink/);
      return true;
    });
    await assert.rejects(store.list(), /is a symlink; the agent keeps its records only/);
    // No chmod through the link, nothing created behind it.
    assert.equal((await Deno.stat(`${dir}/elsewhere`)).mode! & 0o777, 0o755);
    assert.deepEqual([...Deno.readDirSync(`${dir}/elsewhere`)], []);
    // A file where the directory belongs.
    await Deno.writeTextFile(`${dir}/file`, "");
    await assert.rejects(
      ensurePrivateDir(Deno, `${dir}/file`, "state directory"),
      /not a directory/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the state directories are created 0700, also when they exist with wider modes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-private-dir-" });
  try {
    await Deno.mkdir(`${dir}/state`, { mode: 0o755 });
    await Deno.chmod(`${dir}/state`, 0o755);
    await new AttemptStore(Deno, `${dir}/state`).ensure();
    assert.equal((await Deno.stat(`${dir}/state`)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(`${dir}/state/attempts`)).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a record is read only from a regular file of bounded size", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-private-dir-" });
  try {
    await Deno.writeTextFile(`${dir}/secret`, "secret\n");
    await Deno.symlink(`${dir}/secret`, `${dir}/link.json`);
    await mkfifo(`${dir}/fifo.json`);
    await Deno.mkdir(`${dir}/dir.json`);
    await Deno.writeTextFile(`${dir}/big.json`, "x".repeat(2000));
    await Deno.writeTextFile(`${dir}/ok.json`, "{}");
    const read = (name: string) => readRecordFile(Deno, `${dir}/${name}`, 1000);
    assert.deepEqual(await read("ok.json"), { text: "{}" });
    assert.deepEqual(await read("missing.json"), { missing: true });
    assert.match((await read("link.json") as { problem: string }).problem, /symlink/);
    assert.match((await read("fifo.json") as { problem: string }).problem, /not a regular file/);
    assert.match((await read("dir.json") as { problem: string }).problem, /directory/);
    assert.match((await read("big.json") as { problem: string }).problem, /larger than 1000/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic writes get exactly their mode, whatever the umask", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-private-dir-" });
  const previous = Deno.umask(0o077);
  try {
    await writeFileAtomic(Deno, `${dir}/metrics.prom`, "x\n", { mode: 0o644 });
    await writeFileAtomic(Deno, `${dir}/record.json`, "{}\n");
    assert.equal((await Deno.stat(`${dir}/metrics.prom`)).mode! & 0o777, 0o644);
    assert.equal((await Deno.stat(`${dir}/record.json`)).mode! & 0o777, 0o600);
  } finally {
    Deno.umask(previous);
    await Deno.remove(dir, { recursive: true });
  }
});

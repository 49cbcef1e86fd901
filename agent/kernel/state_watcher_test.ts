import assert from "node:assert/strict";
import { openLibc } from "../host/mod.ts";
import { KernelError } from "./kernel_error.ts";
import { watchStateFile } from "./state_watcher.ts";

// A plain file never signals POLLPRI, so these tests exercise the interval path
// and the watcher's life cycle; wake-ups are tested against the simulated kernel
// (tests/integration/kernel_watch_test.ts).

async function openFds(): Promise<number> {
  let count = 0;
  for await (const _ of Deno.readDir("/proc/self/fd")) count++;
  return count;
}

async function stateFile(contents = "normal\n"): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-kernel-watch-" });
  const file = `${dir}/state`;
  await Deno.writeTextFile(file, contents);
  return { dir, file };
}

Deno.test("watcher: yields the initial state, then a change found by the interval re-read", async () => {
  using libc = openLibc();
  const { dir, file } = await stateFile();
  const before = await openFds();
  const controller = new AbortController();
  try {
    const seen: string[] = [];
    for await (
      const observation of watchStateFile({
        libc,
        file,
        interval: 20,
        signal: controller.signal,
      })
    ) {
      seen.push(`${observation.state}/${observation.via}`);
      if (observation.via === "initial") await Deno.writeTextFile(file, "prepared\n");
      else if (observation.state === "prepared") await Deno.writeTextFile(file, "normal\n");
      else break;
    }
    assert.deepEqual(seen, ["normal/initial", "prepared/interval", "normal/interval"]);
    assert.equal(await openFds(), before);
  } finally {
    controller.abort();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watcher: aborting during a long poll ends the iteration at once and releases all", async () => {
  using libc = openLibc();
  const { dir, file } = await stateFile();
  const before = await openFds();
  try {
    const controller = new AbortController();
    const iterator = watchStateFile({ libc, file, interval: 600_000, signal: controller.signal });
    assert.deepEqual(await iterator.next(), {
      value: { state: "normal", via: "initial" },
      done: false,
    });
    assert.equal(await openFds(), before + 2); // the attribute and the eventfd
    const next = iterator.next(); // now waiting in poll(2) for up to ten minutes
    await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    assert.deepEqual(await next, { value: undefined, done: true });
    assert.equal(await openFds(), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watcher: aborting while the consumer holds the iterator releases at once", async () => {
  using libc = openLibc();
  const { dir, file } = await stateFile();
  const before = await openFds();
  try {
    const controller = new AbortController();
    const iterator = watchStateFile({ libc, file, interval: 600_000, signal: controller.signal });
    await iterator.next();
    controller.abort();
    assert.equal(await openFds(), before);
    assert.deepEqual(await iterator.next(), { value: undefined, done: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watcher: break in for-await releases everything", async () => {
  using libc = openLibc();
  const { dir, file } = await stateFile("updated\n");
  const before = await openFds();
  try {
    for await (const observation of watchStateFile({ libc, file, interval: 600_000 })) {
      assert.equal(observation.state, "updated");
      break;
    }
    assert.equal(await openFds(), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watcher: an already aborted signal yields nothing and opens nothing", async () => {
  using libc = openLibc();
  const before = await openFds();
  const seen = [];
  for await (
    const observation of watchStateFile({
      libc,
      file: "/nonexistent",
      interval: 10,
      signal: AbortSignal.abort(),
    })
  ) seen.push(observation);
  assert.deepEqual(seen, []);
  assert.equal(await openFds(), before);
});

Deno.test("watcher: a missing file is a KernelError with ENOENT", async () => {
  using libc = openLibc();
  const iterator = watchStateFile({ libc, file: "/nonexistent/liveupdate/state", interval: 10 });
  await assert.rejects(iterator.next(), (error: unknown) => {
    assert.ok(error instanceof KernelError);
    assert.equal(error.errno, "ENOENT");
    assert.equal(error.operation, "open");
    return true;
  });
});

Deno.test("watcher: garbage in the file ends the watch with a KernelError, releasing all", async () => {
  using libc = openLibc();
  const { dir, file } = await stateFile();
  const before = await openFds();
  try {
    const iterator = watchStateFile({ libc, file, interval: 10 });
    await iterator.next();
    await Deno.writeTextFile(file, "garbage\n");
    await assert.rejects(iterator.next(), (error: unknown) => {
      assert.ok(error instanceof KernelError);
      assert.match(error.message, /holds "garbage\\n", not a live-update state/);
      return true;
    });
    assert.equal(await openFds(), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watcher: refuses an interval below 1 ms", async () => {
  using libc = openLibc();
  await assert.rejects(
    watchStateFile({ libc, file: "/nonexistent", interval: 0 }).next(),
    RangeError,
  );
});

Deno.test("watcher: a FIFO planted where the state file should be fails, it does not hang", async () => {
  using libc = openLibc();
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-kernel-watch-" });
  try {
    const made = await new Deno.Command("mkfifo", { args: [`${dir}/state`] }).output();
    assert.equal(made.code, 0);
    const before = await openFds();
    // Without O_NONBLOCK the open would wait for a writer forever (on this thread).
    const iterator = watchStateFile({ libc, file: `${dir}/state`, interval: 10 });
    await assert.rejects(iterator.next(), (error: unknown) => {
      assert.ok(error instanceof KernelError);
      assert.equal(error.errno, "ESPIPE");
      assert.equal(error.operation, "read");
      return true;
    });
    assert.equal(await openFds(), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { libcKernelFs, openLibc } from "../host/mod.ts";
import { createTestHost } from "../host/test_host.ts";
import { runCli } from "./run.ts";

async function run(argv: string[]) {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-mainline-cli-" });
  try {
    await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/etc/liveupdate/config.d/50-test.toml`,
      `[sessions]\nsocket = "${root}/sessions.sock"\n[kernel]\ndevice = "${root}/liveupdate"\n`,
    );
    const host = createTestHost();
    using libc = openLibc();
    const platform = { libc: () => libc, kernelFs: () => libcKernelFs(libc) };
    const code = await runCli([`--config-root=${root}`, ...argv], host, { platform });
    return { code, stdout: host.stdout.text(), stderr: host.stderr.text(), root };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("sessions: a broker that is not running is a clear error", async () => {
  const { code, stderr, root } = await run(["sessions", "status"]);
  assert.equal(code, 1);
  assert.ok(stderr.includes(`nothing listens on ${root}/sessions.sock`), stderr);
  assert.match(stderr, /start liveupdate-sessions\.service/);
});

Deno.test("sessions serve without /dev/liveupdate exits as unsupported", async () => {
  const { code, stderr } = await run(["sessions", "serve"]);
  assert.equal(code, 4);
  assert.match(stderr, /liveupdate does not exist: this kernel has no mainline live update/);
});

Deno.test("sessions: usage errors", async () => {
  assert.equal((await run(["sessions"])).code, 2);
  assert.match(
    (await run(["sessions", "dance"])).stderr,
    /serve, status, prepare, abort, not "dance"/,
  );
  assert.match((await run(["sessions", "prepare", "--timeout=soon"])).stderr, /--timeout must be/);
});

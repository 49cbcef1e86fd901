import assert from "node:assert/strict";
import { PERMISSION_FLAGS } from "../../agent/build/permissions.ts";
import { GUEST_PATHS, launcherScript, shellQuote } from "./launcher.ts";

Deno.test("launcher: runs main.ts with exactly the agent's permission flags", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-vm-launcher-" });
  try {
    // A stand-in "deno" that prints its arguments, one per line.
    await Deno.writeTextFile(`${dir}/deno`, '#!/bin/sh\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
    const script = launcherScript({ ...GUEST_PATHS, deno: `${dir}/deno` });
    await Deno.writeTextFile(`${dir}/launcher`, script, { mode: 0o755 });
    const out = await new Deno.Command(`${dir}/launcher`, {
      args: ["status", "--json", "it's"],
      stdout: "piped",
    }).output();
    const args = new TextDecoder().decode(out.stdout).trimEnd().split("\n");
    assert.deepEqual(args, [
      "run",
      "--cached-only",
      "--no-prompt",
      "--config=/usr/lib/liveupdate-agent/deno.json",
      ...PERMISSION_FLAGS,
      "/usr/lib/liveupdate-agent/agent/main.ts",
      "status",
      "--json",
      "it's",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launcher: sets the pre-populated DENO_DIR", () => {
  assert.match(launcherScript(), /^export DENO_DIR=\/usr\/lib\/liveupdate-agent\/deno-dir$/m);
});

Deno.test("launcher: shell quoting survives quotes and spaces", () => {
  assert.deepEqual(shellQuote("--allow-read=/a,/b"), "--allow-read=/a,/b");
  assert.deepEqual(shellQuote("a b"), "'a b'");
  assert.deepEqual(shellQuote("it's"), `'it'\\''s'`);
});

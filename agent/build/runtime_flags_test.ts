import assert from "node:assert/strict";
import { compileArgs } from "./compile.ts";
import { launcherArgs, launcherScript } from "./launcher.ts";
import { RUNTIME_FLAGS, V8_FLAGS } from "./runtime_flags.ts";

Deno.test("the compiled binary and the launcher run with RUNTIME_FLAGS", () => {
  const compile = compileArgs("/out/liveupdate-agent", "/src/agent/main.ts");
  const launch = launcherArgs("/opt/agent/main.ts");
  for (const args of [compile, launch]) {
    assert.deepEqual(args.filter((arg) => arg.startsWith("--v8-flags")), [...RUNTIME_FLAGS]);
    // Before the script: flags after it would be the agent's own arguments.
    assert.ok(args.indexOf(RUNTIME_FLAGS[0]!) < args.length - 1);
  }
  assert.equal(compile.at(-1), "/src/agent/main.ts");
  const script = launcherScript({
    deno: "/usr/local/bin/deno",
    main: "/opt/liveupdate-agent/agent/main.ts",
    denoDir: "/var/cache/liveupdate-agent/deno",
  });
  assert.ok(script.includes(`'${RUNTIME_FLAGS[0]}'`), script);
});

/** Runs a little script under `flags`; its exit code and standard error. */
async function evalWith(flags: readonly string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    // Well over 2 MiB of short-lived garbage, as a selection makes.
    args: ["eval", ...flags, "let n = 0; for (let i = 0; i < 200000; i++) n += [i].length;"],
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("V8 accepts RUNTIME_FLAGS (and refuses flags it does not know)", async () => {
  // A typo, or a flag a newer V8 dropped, fails here rather than in production.
  assert.ok(V8_FLAGS.every((flag) => flag.startsWith("--") && !flag.includes(",")));
  const ours = await evalWith(RUNTIME_FLAGS);
  assert.equal(ours.code, 0, ours.stderr);
  const bogus = await evalWith(["--v8-flags=--max-semi-space-size=2,--no-such-v8-flag"]);
  assert.notEqual(bogus.code, 0);
  assert.match(bogus.stderr, /did not recognize/);
});

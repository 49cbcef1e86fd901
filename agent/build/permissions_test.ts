import assert from "node:assert/strict";
import { compileArgs } from "./compile.ts";
import { launcherArgs, launcherScript } from "./launcher.ts";
import { ENV_VARS, PERMISSION_FLAGS, READ_PATHS, WRITE_PATHS } from "./permissions.ts";

const root = new URL("../../", import.meta.url);

/** Every permission-like flag in `args`. */
function permissionFlags(args: readonly string[]): string[] {
  return args.filter((arg) => /^(-A$|--allow-|--deny-|--unstable)/.test(arg));
}

Deno.test("the compiled binary gets exactly PERMISSION_FLAGS", () => {
  const args = compileArgs("/out/liveupdate-agent", "/src/agent/main.ts");
  assert.deepEqual(permissionFlags(args), [...PERMISSION_FLAGS]);
  assert.equal(args[0], "compile");
  assert.equal(args.at(-1), "/src/agent/main.ts");
});

Deno.test("the launcher runs deno with exactly PERMISSION_FLAGS", () => {
  assert.deepEqual(permissionFlags(launcherArgs("/opt/agent/main.ts")), [...PERMISSION_FLAGS]);
  const script = launcherScript({
    deno: "/usr/local/bin/deno",
    main: "/opt/liveupdate-agent/agent/main.ts",
    denoDir: "/var/cache/liveupdate-agent/deno",
  });
  const words = [...script.matchAll(/'([^']*)'/g)].map((m) => m[1]!);
  assert.deepEqual(permissionFlags(words), [...PERMISSION_FLAGS]);
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.match(script, /\n {2}"\$@"\n$/);
  assert.throws(
    () => launcherScript({ deno: "deno", main: "/m.ts", denoDir: "/d" }),
    /not an absolute path/,
  );
});

Deno.test("the Containerfile compiles with `deno task compile` and adds no flags", async () => {
  const containerfile = await Deno.readTextFile(new URL("Containerfile", root));
  const compileSteps = containerfile.split("\n").filter((line) => /^RUN .*compile/.test(line));
  assert.equal(compileSteps.length, 1, compileSteps.join("\n"));
  assert.match(compileSteps[0]!, /^RUN deno task compile( --output=\S+)?$/);
  // The task runs agent/build/compile.ts, whose arguments are compileArgs() above.
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks;
  assert.match(tasks.compile, /^deno run [^"]*agent\/build\/compile\.ts$/);
  const source = await Deno.readTextFile(new URL("agent/build/compile.ts", root));
  assert.match(source, /args: compileArgs\(output\b/);
  assert.equal(source.match(/--allow-/g)?.length ?? 0, 0, "compile.ts adds no flags of its own");
});

Deno.test("PERMISSION_FLAGS name only absolute paths and the system bus", () => {
  for (const flag of PERMISSION_FLAGS) {
    const [name, value = ""] = flag.split("=");
    if (name === "--allow-read" || name === "--allow-write" || name === "--allow-run") {
      for (const path of value.split(",")) assert.match(path, /^\//, flag);
    }
  }
  assert.ok(PERMISSION_FLAGS.includes("--allow-net=unix:/run/dbus/system_bus_socket"));
  assert.ok(!PERMISSION_FLAGS.some((flag) => flag === "-A" || flag === "--allow-all"));
});

Deno.test("no Deno file permission under /sys, /proc or /dev: those go through libc", () => {
  for (const path of [...READ_PATHS, ...WRITE_PATHS]) {
    assert.doesNotMatch(path, /^\/(sys|proc|dev)(\/|$)/, path);
  }
  assert.ok(PERMISSION_FLAGS.includes("--allow-ffi"));
  assert.ok(PERMISSION_FLAGS.includes("--allow-sys=uid"));
});

Deno.test("every environment variable the agent reads is in ENV_VARS", async () => {
  const read = new Set<string>();
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) {
        // agent/build is the build tooling (compile.ts reads DENORT_BIN), not the agent.
        if (entry.name !== "build") await walk(new URL(`${entry.name}/`, dir));
      } else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
        const source = await Deno.readTextFile(new URL(entry.name, dir));
        for (const match of source.matchAll(/\benv\.get\(\s*"([A-Z0-9_]+)"\s*\)/g)) {
          read.add(match[1]!);
        }
        assert.doesNotMatch(source, /\bprocess\.env\b|Deno\.env\.toObject/, entry.name);
      }
    }
  };
  await walk(new URL("agent/", root));
  assert.ok(read.has("NOTIFY_SOCKET"), "the scan finds the readers");
  const listed = new Set<string>(ENV_VARS);
  for (const name of read) assert.ok(listed.has(name), `${name} is read but not in ENV_VARS`);
});

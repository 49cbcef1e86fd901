// deno-lint-ignore-file no-console -- a developer tool that prints progress, not part of the agent
/**
 * The README's main-job command (`deno task demo`): installs what the rehearsal
 * needs (tests/tools/setup_host.sh demo: FUSE, a compiler, systemd, dbus), builds
 * the simulated kernel (tests/sim/build.sh), then runs the agent's own `demo`
 * command — a full live update rehearsed on the simulated kernel and a private
 * systemd manager. Arguments are passed to `liveupdate-agent demo` (`--json`,
 * `--keep`). Needs root.
 *
 * @module
 */

const root = new URL("../../", import.meta.url).pathname;

async function step(what: string, command: string, args: string[]): Promise<void> {
  const { code } = await new Deno.Command(command, {
    args,
    cwd: root,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    console.error(`demo: ${what} failed (exit ${code}): ${command} ${args.join(" ")}`);
    Deno.exit(1);
  }
}

if (import.meta.main) {
  if (Deno.uid() !== 0) {
    console.error("demo: the rehearsal needs root (a FUSE mount, namespaces); run it with sudo.");
    Deno.exit(1);
  }
  await step("installing the packages it needs", "bash", ["tests/tools/setup_host.sh", "demo"]);
  await step("building the simulated kernel", "bash", ["tests/sim/build.sh"]);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `${root}agent/main.ts`, "demo", ...Deno.args],
    cwd: root,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}

/**
 * The inside of tests/integration/exact_permissions_test.ts: runs as root with
 * `-A` in a private mount namespace made from the simulator's (so the simulator's
 * FUSE mount is reachable there), and
 *
 * 1. mounts a fresh procfs on /proc (this pid namespace's) and binds the
 *    simulator's root over /sys;
 * 2. mounts a tmpfs over each production path the agent uses — creating a
 *    missing mount point inside an overlay of its parent, so nothing on the host
 *    changes — and copies the staged files in (config drop-in, udev database,
 *    kernel metadata, target image);
 * 3. runs each requested script (`agent/main.ts` and its commands, or a probe)
 *    with exactly the launcher's `deno run` arguments (agent/build/launcher.ts),
 *    a cleared environment and `/` as working directory;
 * 4. prints `{ runs: [{ name, code, stdout, stderr }] }` as JSON.
 *
 *     nsenter -t SIM_PID -m -- unshare -m --propagation private --mount-proc \
 *       deno run -A tests/integration/_exact_permissions_ns.ts SPEC.json
 *
 * Everything it mounts disappears with the namespace when it exits.
 *
 * @module
 */

import { launcherArgs } from "../../agent/build/launcher.ts";

/** What the test asks for. */
export interface NsSpec {
  /** The simulator's mount point (a path in its mount namespace, and so in this one). */
  simMount: string;
  /** Production path → staged directory whose contents go there ("" for empty). */
  mounts: Record<string, string>;
  /** A scratch directory for the overlays' upper layers. */
  scratch: string;
  /** The deno binary and the DENO_DIR with every dependency cached. */
  deno: string;
  denoDir: string;
  runs: NsRun[];
}

/** One process to run under the flags. */
export interface NsRun {
  name: string;
  /** The script (agent/main.ts or a probe) and its arguments. */
  script: string;
  args: string[];
  /** Flags to leave out of the launcher's (a control run), by prefix. */
  without?: string[];
}

/** What one run printed. */
export interface NsResult {
  name: string;
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

async function run(command: string, args: string[]): Promise<void> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  if (output.code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} failed (exit ${output.code}): ${decoder.decode(output.stderr)}`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Directories made writable here by an overlay (lower: the host's, upper: scratch). */
const overlaid = new Set<string>();
let overlays = 0;

/** Makes `path` exist in this namespace only: an overlay on its nearest existing ancestor. */
async function ensureMountPoint(path: string, scratch: string): Promise<void> {
  if (await exists(path)) return;
  let ancestor = path;
  do ancestor = ancestor.slice(0, ancestor.lastIndexOf("/")) || "/"; while (
    !(await exists(ancestor))
  );
  const covered = [...overlaid].some((dir) => ancestor === dir || ancestor.startsWith(`${dir}/`));
  if (!covered) {
    if (ancestor === "/") throw new Error(`Will not overlay / to create ${path}`);
    const layer = `${scratch}/overlay-${overlays++}`;
    await Deno.mkdir(`${layer}/upper`, { recursive: true });
    await Deno.mkdir(`${layer}/work`, { recursive: true });
    await run("mount", [
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${ancestor},upperdir=${layer}/upper,workdir=${layer}/work`,
      ancestor,
    ]);
    overlaid.add(ancestor);
  }
  await Deno.mkdir(path, { recursive: true });
}

const spec = JSON.parse(await Deno.readTextFile(Deno.args[0]!)) as NsSpec;

// The overlays' upper layers live on a tmpfs private to this namespace.
await run("mount", ["-t", "tmpfs", "-o", "mode=0700", "tmpfs", spec.scratch]);
await run("mount", ["--bind", spec.simMount, "/sys"]);
for (const [path, staged] of Object.entries(spec.mounts)) {
  await ensureMountPoint(path, spec.scratch);
  await run("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", path]);
  if (staged !== "") await run("cp", ["-a", `${staged}/.`, `${path}/`]);
}

const results: NsResult[] = [];
for (const item of spec.runs) {
  const args = launcherArgs(item.script)
    .filter((arg) => !(item.without ?? []).some((prefix) => arg.startsWith(prefix)));
  const output = await new Deno.Command(spec.deno, {
    args: [...args, ...item.args],
    cwd: "/",
    clearEnv: true,
    env: { DENO_DIR: spec.denoDir, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  results.push({
    name: item.name,
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  });
}
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({ runs: results }) + "\n"));

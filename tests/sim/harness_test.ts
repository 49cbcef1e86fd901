/**
 * The harness and the CLI: a simulator is reachable from other processes, and
 * stopping it — cleanly, after a daemon crash, or after its wrapper was killed
 * — leaves no process, mount or directory behind.
 */
import assert from "node:assert/strict";
import { simControl, startSim } from "./harness.ts";
import { smallTree } from "./_conformance.ts";

const decoder = new TextDecoder();
const CLI = new URL("./cli.ts", import.meta.url).pathname;

/** Live processes whose command line mentions `text`. */
async function processesMentioning(text: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).replaceAll(
        "\0",
        " ",
      );
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmdline.includes(text) && state !== "Z") found.push(`${entry.name}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function assertNothingLeft(dir: string): Promise<void> {
  assert.deepEqual(await processesMentioning(dir), []);
  const mounts = await Deno.readTextFile("/proc/self/mounts");
  assert.ok(!mounts.includes(dir), `a mount of ${dir} is visible here`);
  assert.ok(!mounts.includes("fuse.luo-sim") || !mounts.includes(dir));
  await assert.rejects(() => Deno.stat(dir), Deno.errors.NotFound, `${dir} was removed`);
}

function dirOf(mountpoint: string): string {
  return mountpoint.slice(0, mountpoint.lastIndexOf("/"));
}

Deno.test("a simulator serves other processes and stops without leaving anything", async () => {
  const sim = await startSim({ tree: smallTree() });
  const dir = dirOf(sim.mountpoint);
  try {
    const cat = await new Deno.Command("cat", {
      args: [`${sim.root}/kernel/liveupdate/state`],
    }).output();
    assert.equal(decoder.decode(cat.stdout), "normal\n");
    const sh = await new Deno.Command("sh", {
      args: ["-c", `echo 1 > ${sim.root}/kernel/liveupdate/prepare`],
    }).output();
    assert.equal(sh.code, 0);
    assert.equal(await Deno.readTextFile(sim.path("kernel/liveupdate/state")), "prepared\n");
    // The mount lives only in the simulator's namespace.
    assert.deepEqual([...Deno.readDirSync(sim.mountpoint)], []);
    assert.equal((await processesMentioning(dir)).length, 2, "wrapper and daemon");
  } finally {
    await sim.stop();
  }
  await sim.stop(); // stopping twice is harmless
  await assertNothingLeft(dir);
});

Deno.test("a crashed daemon fails stop() with its exit, and nothing is left", async () => {
  const sim = await startSim({ tree: smallTree() });
  const dir = dirOf(sim.mountpoint);
  Deno.kill(sim.daemonPid, "SIGKILL");
  await sim.exited;
  await assert.rejects(() => sim.stop(), /luo-sim exited with code/);
  await assertNothingLeft(dir);
});

Deno.test("killing the wrapper takes the daemon and its mount along", async () => {
  const sim = await startSim({ tree: smallTree() });
  const dir = dirOf(sim.mountpoint);
  Deno.kill(sim.pid, "SIGKILL");
  await sim.exited;
  await assert.rejects(() => sim.stop(), /luo-sim exited/);
  await assertNothingLeft(dir);
});

Deno.test("a test process that dies without stopping its simulator takes it along", async () => {
  const script = `
    import { startSim } from ${JSON.stringify(new URL("./harness.ts", import.meta.url).href)};
    import { smallTree } from ${JSON.stringify(new URL("./_conformance.ts", import.meta.url).href)};
    const sim = await startSim({ tree: smallTree() });
    console.log(sim.mountpoint);
    Deno.kill(Deno.pid, "SIGKILL");
  `;
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(child.signal, "SIGKILL", decoder.decode(child.stderr));
  const dir = dirOf(decoder.decode(child.stdout).trim());
  assert.match(dir, /luo-sim-/);
  try {
    // The daemon sees its input pipe close and exits; wait for that (failsafe: 30 s).
    for (let i = 0; i < 300 && (await processesMentioning(dir)).length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(await processesMentioning(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await assertNothingLeft(dir);
});

Deno.test("the CLI starts a simulator in the foreground, takes commands and stops on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "start", "--devices=30", "--marked=2", "--notify=off"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const started = JSON.parse(text.split("\n")[0]!) as { root: string; mountpoint: string };
  const dir = dirOf(started.mountpoint);
  try {
    assert.equal((await simControl(started.root, "status")).ok, true);
    const status = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "ctl", started.root, "status"],
    }).output();
    assert.equal(status.code, 0, decoder.decode(status.stderr));
    const reply = JSON.parse(decoder.decode(status.stdout));
    assert.equal(reply.status.devices, 30);
    assert.equal(reply.status.notify, false);
    const refused = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "ctl", started.root, "fail", "PREPARE", "EBUSY", "nosuch"],
    }).output();
    assert.equal(refused.code, 1);
    assert.match(decoder.decode(refused.stderr), /no subsystem "nosuch"/);
  } finally {
    child.kill("SIGTERM");
    const { code } = await child.status;
    await reader.cancel();
    const stderr = await new Response(child.stderr).text();
    assert.equal(code, 0, stderr);
    assert.match(stderr, /sysfs root/);
  }
  await assertNothingLeft(dir);
});

Deno.test("the CLI writes generated trees", async () => {
  const dir = await Deno.makeTempDir({ prefix: "luo-sim-cli-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "tree", "--devices=25", "--marked=1", `--out=${dir}/t.txt`],
    }).output();
    assert.equal(out.code, 0, decoder.decode(out.stderr));
    const lines = (await Deno.readTextFile(`${dir}/t.txt`)).split("\n").filter((l) =>
      l && l[0] !== "#"
    );
    assert.equal(lines.length, 25);
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "tree", "--devices=x", `--out=${dir}/t.txt`],
    }).output();
    assert.equal(bad.code, 2);
    assert.match(decoder.decode(bad.stderr), /--devices=x is not a whole number/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

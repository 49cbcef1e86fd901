import assert from "node:assert/strict";
import {
  cgroupHierarchies,
  HarnessLeakError,
  type PrivateSystemd,
  startPrivateSystemd,
} from "./harness.ts";
import { phaseTestUnits } from "./test_units.ts";

function existing(paths: string[]): string[] {
  return paths.filter((path) => {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  });
}

/** Processes on the host whose cgroup or command line mention `id`. */
function processesOf(id: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") continue;
      const cgroup = Deno.readTextFileSync(`/proc/${entry.name}/cgroup`);
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cgroup.includes(id) || cmdline.includes(id)) found.push(`${entry.name}: ${cmdline}`);
    } catch {
      // the process ended meanwhile
    }
  }
  return found;
}

/** Asserts that nothing of a stopped run is left on the host. */
function assertNothingLeft(manager: PrivateSystemd): void {
  const cgroups = existing(cgroupHierarchies().map((h) => `${h.mountPoint}/${manager.id}`));
  assert.deepEqual(cgroups, [], "cgroups left");
  assert.deepEqual(processesOf(manager.id), [], "processes left");
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .filter((line) => line.includes(manager.dir));
  assert.deepEqual(mounts, [], "mounts left");
  assert.deepEqual(existing([manager.dir]), [], "run directory left");
}

Deno.test("harness: a manager starts, runs 100 units and leaves nothing behind", async () => {
  const units = phaseTestUnits(100, "harness");
  const manager = await startPrivateSystemd({ units: units.files });
  let managerPid = 0;
  try {
    managerPid = manager.managerPid();
    // The manager, its bus and its units live below the run's own cgroup.
    const cgroup = Deno.readTextFileSync(`/proc/${managerPid}/cgroup`);
    assert.match(cgroup, new RegExp(`:name=systemd:/${manager.id}/`));
    // It is in a PID namespace of its own.
    assert.notEqual(
      Deno.readLinkSync(`/proc/${managerPid}/ns/pid`),
      Deno.readLinkSync("/proc/self/ns/pid"),
    );
    const start = await manager.systemctl(["start", ...units.names]);
    assert.equal(start.code, 0, start.stderr);
    const active = await manager.systemctl(["is-active", ...units.names]);
    assert.deepEqual(active.stdout.trim().split("\n"), units.names.map(() => "active"));
    const procs = processesOf(manager.id);
    assert.ok(procs.length >= 67, `unit processes run in the run's cgroup: ${procs.length}`);
    const stop = await manager.systemctl(["stop", ...units.names]);
    assert.equal(stop.code, 0, stop.stderr);
    const inactive = await manager.systemctl(["is-active", ...units.names]);
    assert.deepEqual(inactive.stdout.trim().split("\n"), units.names.map(() => "inactive"));
    // Start them again, so the teardown has running units to remove.
    assert.equal((await manager.systemctl(["start", ...units.names])).code, 0);
  } finally {
    await manager.stop();
  }
  assertNothingLeft(manager);
  assert.equal(existing([`/proc/${managerPid}/cmdline`]).length, 0, "manager gone");
});

Deno.test("harness: the bus is reachable from the test process, systemctl from inside", async () => {
  await using manager = await startPrivateSystemd();
  const version = await manager.busctl([
    "get-property",
    "org.freedesktop.systemd1",
    "/org/freedesktop/systemd1",
    "org.freedesktop.systemd1.Manager",
    "Version",
  ]);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^s "\d+/);
  const state = await manager.systemctl(["is-system-running"]);
  assert.match(state.stdout, /running|degraded/);
  // The host's /run is untouched: the manager's /run is private to its namespace.
  assert.equal(existing([`/run/user/${manager.id}`]).length, 0);
});

Deno.test("harness: a failing test still tears everything down", async () => {
  let manager: PrivateSystemd | undefined;
  await assert.rejects(async () => {
    manager = await startPrivateSystemd({
      units: { "sleeper.service": "[Service]\nExecStart=/bin/sleep infinity\n" },
    });
    try {
      assert.equal((await manager.systemctl(["start", "sleeper.service"])).code, 0);
      throw new Error("the test failed here");
    } finally {
      await manager.stop();
    }
  }, /the test failed here/);
  assertNothingLeft(manager!);
});

Deno.test("harness: a test process that dies takes its manager with it", async () => {
  // A child deno starts a manager and is then killed without any teardown.
  const script = `
    import { startPrivateSystemd } from ${
    JSON.stringify(new URL("./harness.ts", import.meta.url).href)
  };
    const m = await startPrivateSystemd({ units: { "s.service": "[Service]\\nExecStart=/bin/sleep infinity\\n" } });
    await m.systemctl(["start", "s.service"]);
    console.log(JSON.stringify({ id: m.id, dir: m.dir, pid: m.managerPid() }));
    await new Promise(() => {});
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  const run = JSON.parse(text) as { id: string; dir: string; pid: number };
  child.kill("SIGKILL");
  await child.status;
  await reader.cancel();
  // The parent-death signal ends the namespace; wait for its processes to go.
  for (let i = 0; i < 500 && processesOf(run.id).length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.deepEqual(processesOf(run.id), [], "no process of the dead run survives");
  const before = existing(cgroupHierarchies().map((h) => `${h.mountPoint}/${run.id}`));
  assert.ok(before.length > 0, "the dead run left its (now empty) cgroups");
  // The next run sweeps the dead run's cgroups and directory.
  await using next = await startPrivateSystemd();
  assert.ok(next.id !== run.id);
  const left = existing([
    ...cgroupHierarchies().map((h) => `${h.mountPoint}/${run.id}`),
    run.dir,
  ]);
  assert.deepEqual(left, [], "the sweep removed the dead run's cgroups and directory");
});

Deno.test("harness: a leak is reported as HarnessLeakError", () => {
  const error = new HarnessLeakError(["mount /tmp/x"]);
  assert.match(error.message, /left things behind.*mount \/tmp\/x/);
});

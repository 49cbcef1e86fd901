/**
 * Write confinement, proven with a system-call trace: the agent's commands —
 * status, devices, check, prepare → (simulated) kexec → finish, prepare → cancel,
 * and recover after a killed prepare — run as CLI subprocesses on the update rig
 * (the simulated LUO kernel, a private systemd manager, kexec stand-ins) under
 * `strace -ff`, and every file the agent's process creates, opens for writing,
 * renames, removes, truncates, links or chmods is one it may write:
 *
 * - `<sysfs>/kernel/liveupdate/{prepare,finish}` and
 *   `<sysfs>/devices/…/liveupdate/requested` below the configured sysfs root;
 * - the state directory (records, the record of requested devices) and the
 *   runtime directory (the update lock);
 * - the metrics file (and its temporary file beside it);
 * - the Deno runtime's own: its caches in DENO_DIR and /dev/null (`runtimeWrite`).
 *
 * Writes of the programs the agent starts (the kexec stand-ins: they write their
 * own log and the simulator's control file) are theirs, told apart by execve.
 * A positive control checks the trace sees the kernel writes at all.
 */

import assert from "node:assert/strict";
import { SMALL, startUpdateRig, TARGET_RELEASE } from "../integration/_update_rig.ts";
import { runtimeWrite } from "./_run.ts";
import { type TracedWrite, traceWrites } from "./_strace.ts";

Deno.test("write confinement: a whole update's commands write only the allowed files", async () => {
  const metricsDir = await Deno.makeTempDir({ prefix: "liveupdate-confine-metrics-" });
  try {
    await using rig = await startUpdateRig({
      config: `[metrics]\nfile = "${metricsDir}/liveupdate.prom"\n`,
    });
    await rig.start("vmm.service");
    // The simulated sysfs root as the agent names it, and as the kernel shows its files
    // (the FUSE mount lives in the simulator's mount namespace).
    const roots = [rig.sim.root, rig.sim.mountpoint];
    const allowed = (path: string): boolean => {
      for (const root of roots) {
        if (!path.startsWith(`${root}/`)) continue;
        const relative = path.slice(root.length + 1);
        return /^kernel\/liveupdate\/(prepare|finish)$/.test(relative) ||
          /^devices\/(?:[^/]+\/)+liveupdate\/requested$/.test(relative);
      }
      const under = (dir: string) => path === dir || path.startsWith(`${dir}/`);
      return under(rig.stateDir) || under(`${rig.dir}/run`) ||
        path === `${metricsDir}/liveupdate.prom` ||
        path.startsWith(`${metricsDir}/.liveupdate.prom.tmp-`) || runtimeWrite(path);
    };
    const all: TracedWrite[] = [];
    const run = async (args: string[], env: Record<string, string> = {}) => {
      const traced = await traceWrites(Deno.execPath(), rig.cliArgs(...args), {
        env: { NO_COLOR: "1", ...env },
      });
      const agent = traced.writes.filter((write) => write.program === Deno.execPath());
      all.push(...agent);
      const outside = agent.flatMap((write) =>
        write.paths.filter((path) => !allowed(path)).map((path) => `${write.call} ${path}`)
      );
      assert.deepEqual(outside, [], `${args.join(" ")} wrote outside the allowed paths`);
      assert.doesNotMatch(traced.stderr, /Uncaught|Unexpected internal error|^\s+at /m);
      return traced;
    };

    assert.equal((await run(["status", "--json"])).code, 0);
    assert.equal((await run(["devices", "--json"])).code, 0);
    const check = await run(["check"]);
    assert.equal(check.code, 0, check.stdout + check.stderr);

    // prepare → the kexec (the stand-in tells the simulator) → the new boot → finish.
    const prepare = await run(["prepare"]);
    assert.equal(prepare.code, 0, prepare.stderr);
    assert.equal((await rig.sim.status()).state, "updated");
    await Deno.writeTextFile(`${rig.proc}/sys/kernel/osrelease`, `${TARGET_RELEASE}\n`);
    await Deno.writeTextFile(`${rig.proc}/uptime`, "3.50 6.00\n");
    for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
    const finish = await run(["finish"]);
    assert.equal(finish.code, 0, finish.stderr);
    assert.equal((await rig.record())?.status, "succeeded");

    // prepare without the kexec, then cancel.
    const prepared = await run(["prepare", "--no-kexec"]);
    assert.equal(prepared.code, 0, prepared.stderr);
    assert.equal((await rig.sim.status()).state, "prepared");
    const cancel = await run(["cancel"]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal((await rig.sim.status()).state, "normal");

    // A prepare killed after its "prepare" phase, and the recover that rolls it back.
    const killed = await run(["prepare", "--no-kexec"], {
      LIVEUPDATE_AGENT_CRASH_AT: "prepare-kernel:done",
    });
    assert.equal(killed.code, 137, killed.stderr);
    assert.equal((await rig.sim.status()).state, "prepared");
    const recover = await run(["recover"]);
    assert.equal(recover.code, 6, recover.stderr);
    assert.equal((await rig.sim.status()).state, "normal");
    for (const path of SMALL.selected) assert.equal((await rig.flags(path)).requested, false);

    // The control surface's files: private state, the metrics world-readable.
    const mode = async (path: string) => ((await Deno.stat(path)).mode ?? 0) & 0o777;
    assert.equal(await mode(rig.stateDir), 0o700, "state directory");
    assert.equal(await mode(`${rig.stateDir}/attempts`), 0o700, "records directory");
    for await (const entry of Deno.readDir(`${rig.stateDir}/attempts`)) {
      assert.equal(await mode(`${rig.stateDir}/attempts/${entry.name}`), 0o600, entry.name);
    }
    assert.equal(await mode(`${rig.stateDir}/devices-requested.json`), 0o600, "device record");
    assert.equal(await mode(`${rig.dir}/run`), 0o700, "runtime directory");
    assert.equal(await mode(`${rig.dir}/run/update.lock`), 0o600, "the lock");
    assert.equal(await mode(`${metricsDir}/liveupdate.prom`), 0o644, "the metrics file");

    // The positive control: the trace saw the agent's own kernel and record writes.
    const written = new Set(all.flatMap((write) => write.paths));
    const seen = (pattern: RegExp) => [...written].some((path) => pattern.test(path));
    assert.ok(seen(/\/kernel\/liveupdate\/prepare$/), "prepare written");
    assert.ok(seen(/\/kernel\/liveupdate\/finish$/), "finish written");
    assert.ok(seen(/\/liveupdate\/requested$/), "requested written");
    assert.ok(seen(/\/attempts\/[^/]+\.json$/), "records written");
    assert.ok(seen(/\/update\.lock$/), "the lock created");
    assert.ok(seen(/liveupdate\.prom$/), "the metrics file written");
  } finally {
    await Deno.remove(metricsDir, { recursive: true });
  }
});

Deno.test("write confinement: the trace check sees a write outside the allowed paths", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-confine-control-" });
  try {
    const traced = await traceWrites(Deno.execPath(), [
      "eval",
      `Deno.writeTextFileSync("${dir}/outside", "x"); Deno.renameSync("${dir}/outside", "${dir}/moved"); ` +
      `new Deno.Command("/bin/sh", { args: ["-c", "echo > ${dir}/by-child"] }).outputSync();`,
    ]);
    assert.equal(traced.code, 0, traced.stderr);
    const own = traced.writes.filter((write) => write.program === Deno.execPath());
    const paths = own.flatMap((write) => write.paths);
    assert.ok(paths.includes(`${dir}/outside`), JSON.stringify(own, null, 1));
    assert.ok(paths.includes(`${dir}/moved`));
    // The child's write is attributed to the child's program, not to deno.
    const child = traced.writes.filter((write) => write.program !== Deno.execPath());
    assert.ok(child.some((write) => write.paths.includes(`${dir}/by-child`)));
    assert.ok(!paths.includes(`${dir}/by-child`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The fault matrix of `prepare`, in process, on one rig (the simulated kernel and a
 * real private systemd manager), reset to the baseline before every case. Each
 * case injects one fault and asserts that the host ends consistent (kernel state,
 * units, `requested` flags, no kexec kernel loaded, no lock held) and that the
 * record says what happened. The README's "Fault matrix" lists every case.
 */

import assert from "node:assert/strict";
import { ExitCode } from "../../agent/exit_codes.ts";
import type { FileSystem } from "../../agent/host/mod.ts";
import {
  BusyError,
  RefusedError,
  resolveUpdate,
  RolledBackError,
  runCancel,
  runPrepare,
  type RunPrepareOptions,
  UpdateFailedError,
} from "../../agent/update/mod.ts";
import { writeUdevDb } from "../sim/tree.ts";
import {
  assertConsistent,
  assertListedInReadme,
  assertRecord,
  type HostState,
  hostState,
  lastRecord,
  resetRig,
  undoneThrough,
} from "./_update_faults.ts";
import {
  type RigContextOptions,
  SMALL,
  smallTree,
  startUpdateRig,
  type UpdateRig,
} from "./_update_rig.ts";

interface PrepareRun {
  error?: unknown;
  record?: Awaited<ReturnType<typeof runPrepare>>;
  log: string;
  kexecCalls: number;
}

async function prepare(
  rig: UpdateRig,
  options: RunPrepareOptions = {},
  contextOptions: RigContextOptions = {},
): Promise<PrepareRun> {
  const context = await rig.context(contextOptions);
  try {
    const record = await runPrepare(context.update, options);
    return { record, log: context.host.stderr.text(), kexecCalls: context.kexecCalls() };
  } catch (error) {
    return { error, log: context.host.stderr.text(), kexecCalls: context.kexecCalls() };
  } finally {
    await context.close();
  }
}

async function resolve(rig: UpdateRig, mode: "finish" | "recover") {
  const context = await rig.context();
  try {
    return await resolveUpdate(context.update, mode);
  } finally {
    await context.close();
  }
}

async function recoverAgain(rig: UpdateRig) {
  const before = await hostState(rig);
  const record = JSON.stringify(await rig.record());
  const resolution = await resolve(rig, "recover");
  await assertConsistent(rig, before, { kexecLoaded: before.kexecLoaded });
  assert.equal(JSON.stringify(await rig.record()), record, "the record is unchanged");
  return resolution;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Asserts a rollback: RolledBackError (exit 6), the host as before with phase "cancel" run. */
async function expectRolledBack(
  rig: UpdateRig,
  before: HostState,
  run: PrepareRun,
  expected: { step: string; message: RegExp; failed?: string[]; undone?: string[] },
): Promise<void> {
  assert.ok(run.error instanceof RolledBackError, `RolledBackError, not ${run.error}`);
  assert.equal(run.error.exitCode, ExitCode.RolledBack);
  assert.match(run.error.message, expected.message);
  assert.equal(run.kexecCalls, 0, "no kexec was issued");
  await assertConsistent(rig, before, { cancelPhase: true, failed: expected.failed ?? [] });
  assertRecord(await lastRecord(rig), {
    status: "rolled-back",
    message: expected.message,
    step: expected.step,
    undone: expected.undone ?? undoneThrough(expected.step),
  });
  const log = await rig.kexecLog();
  if (log.some((line) => line.startsWith("-s -l"))) {
    assert.equal(log.at(-1), "-s -u", "the kexec kernel was unloaded last");
  }
}

/** Asserts a refusal: RefusedError (exit 5), nothing changed on the host, nothing loaded. */
async function expectRefused(
  rig: UpdateRig,
  before: HostState,
  run: PrepareRun,
  check: string,
  message: RegExp,
): Promise<void> {
  assert.ok(run.error instanceof RefusedError, `RefusedError, not ${run.error}`);
  assert.equal(run.error.exitCode, ExitCode.Refused);
  const problem = run.error.problems.find((p) => p.check === check);
  assert.ok(problem, `a "${check}" problem among ${JSON.stringify(run.error.problems)}`);
  assert.match(problem.message, message);
  await assertConsistent(rig, before, { kexecLoaded: before.kexecLoaded });
  assert.deepEqual(await rig.kexecLog(), before.kexecLog, "kexec was not run");
}

/** A refusal that also leaves a "refused" record naming the problem. */
async function expectRefusedRecord(
  rig: UpdateRig,
  before: HostState,
  run: PrepareRun,
  check: string,
  message: RegExp,
): Promise<void> {
  await expectRefused(rig, before, run, check, message);
  const record = await lastRecord(rig);
  assert.equal(record.status, "refused");
  assert.equal(record.outcome?.result, "refused");
  assert.equal(record.outcome?.exit_code, ExitCode.Refused);
  assert.match(record.outcome?.message ?? "", message);
  assert.deepEqual(record.steps, [], "no step ran");
  const refused = record.notes.refused as { check: string; message: string }[];
  assert.ok(refused.some((p) => p.check === check && message.test(p.message)));
}

/** A file system whose atomic writes below `dir` fail with ENOSPC after `ok` of them. */
function diskFull(dir: string, ok: number): (fs: FileSystem) => FileSystem {
  let writes = 0;
  const full = (path: string | URL) => {
    if (!String(path).startsWith(dir)) return;
    if (writes++ < ok) return;
    throw Object.assign(new Error(`No space left on device (os error 28): "${path}"`), {
      code: "ENOSPC",
    });
  };
  return (fs) => ({
    readTextFile: fs.readTextFile,
    readFile: fs.readFile,
    writeTextFile: (path, data, options) => {
      full(path);
      return fs.writeTextFile(path, data, options);
    },
    writeFile: (path, data, options) => {
      full(path);
      return fs.writeFile(path, data, options);
    },
    readDir: fs.readDir,
    stat: fs.stat,
    lstat: fs.lstat,
    realPath: fs.realPath,
    readLink: fs.readLink,
    mkdir: fs.mkdir,
    remove: fs.remove,
    rename: fs.rename,
    open: (path, options) => {
      if (options?.createNew || options?.create) full(path);
      return fs.open(path, options);
    },
    chmod: fs.chmod,
  });
}

type Case = [name: string, run: (rig: UpdateRig, before: HostState) => Promise<void>];

const PREPARE_ERRNOS = ["EBUSY", "ENOMEM", "EINVAL", "ENODEV", "EIO", "EPERM", "ETIMEDOUT"];

const CASES: Case[] = [
  // Every errno a PREPARE callback can fail with: the kernel stays normal, the update
  // rolls back.
  ...PREPARE_ERRNOS.map((errno, index): Case => [
    `PREPARE callback fails with ${errno}`,
    async (rig, before) => {
      await rig.sim.failNextPrepare(index % 2 ? "iommu" : "kvm", errno);
      const run = await prepare(rig);
      await expectRolledBack(rig, before, run, {
        step: "prepare-kernel",
        message: new RegExp(`Step "prepare-kernel" failed: .*${errno}`),
      });
      const failure = (await lastRecord(rig)).notes.failure as { errno?: string };
      assert.equal(failure.errno, errno);
    },
  ]),
  ["PREPARE interrupted (EAGAIN on the state lock)", async (rig, before) => {
    const run = await prepare(rig, {}, {
      onJournal: async (step, status) => {
        if (step === "prepare-kernel" && status === "started") await rig.sim.eagainNext(1);
      },
    });
    await expectRolledBack(rig, before, run, {
      step: "prepare-kernel",
      message: /Step "prepare-kernel" failed: .*EAGAIN/,
    });
  }],
  ["PREPARE fails in a preserved device's callback (EIO)", async (rig, before) => {
    await rig.sim.failNextPrepare({ device: SMALL.selected[1]! }, "EIO");
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "prepare-kernel",
      message: /Step "prepare-kernel" failed: .*EIO/,
    });
    const flags = await rig.flags(SMALL.selected[1]!);
    assert.deepEqual(flags, { requested: false, preserved: false, reclaimed: false });
  }],
  ["phase prepare: a unit fails", async (rig, before) => {
    await rig.setConfig('[phases.prepare]\nstart = ["checkpoint.service", "broken.service"]\n');
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "phase-prepare",
      message: /Step "phase-prepare" failed: .*broken\.service/,
      failed: ["broken.service"],
    });
    assert.equal((await hostState(rig)).units["broken.service"], "failed");
    assert.match(run.log, /unit-failed|Unit "broken\.service" start job: failed/);
  }],
  ["phase prepare: a unit times out", async (rig, before) => {
    await rig.setConfig('[phases.prepare]\nstart = ["slow.service"]\ntimeout = "2s"\n');
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "phase-prepare",
      message: /Step "phase-prepare" failed: .*timed out .*slow\.service/,
      failed: ["slow.service"],
    });
  }],
  ["phase prepare: a dependency fails", async (rig, before) => {
    await rig.setConfig('[phases.prepare]\nstart = ["needs-broken.service"]\n');
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "phase-prepare",
      message: /Step "phase-prepare" failed: .*needs-broken\.service.*dependency/,
      failed: ["broken.service"],
    });
  }],
  ["phase reboot: a unit fails (the kernel is prepared by then)", async (rig, before) => {
    await rig.setConfig('[phases.reboot]\nstart = ["broken.service"]\n');
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "phase-reboot",
      message: /Step "phase-reboot" failed: .*broken\.service/,
      failed: ["broken.service"],
    });
  }],
  ["phase reboot: a unit times out", async (rig, before) => {
    await rig.setConfig('[phases.reboot]\nstart = ["slow.service"]\ntimeout = "2s"\n');
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "phase-reboot",
      message: /Step "phase-reboot" failed: .*timed out .*slow\.service/,
      failed: ["slow.service"],
    });
  }],
  ["a phase unit does not exist (preflight)", async (rig, before) => {
    await rig.setConfig('[phases.prepare]\nstart = ["nope.service"]\n');
    await expectRefusedRecord(rig, before, await prepare(rig), "units", /nope\.service.*not-found/);
  }],
  ["a phase unit is masked (preflight)", async (rig, before) => {
    await Deno.symlink("/dev/null", `${rig.systemd.unitDir}/masked.service`);
    await rig.systemd.reload();
    await rig.setConfig('[phases.updated]\nstart = ["masked.service"]\n');
    await expectRefusedRecord(rig, before, await prepare(rig), "units", /masked\.service.*masked/);
  }],
  ["kexec cannot load the target", async (rig, before) => {
    await rig.setKexec({ exit: 1 });
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "load-kernel",
      message: /Step "load-kernel" failed: .*exit 1.*kexec_file_load failed/,
    });
  }],
  ["kexec load times out", async (rig, before) => {
    await rig.setKexec({ hang: true });
    await rig.setConfig('[kexec]\nload_timeout = "1s"\n');
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "load-kernel",
      message: /Step "load-kernel" failed: .*did not load .* within 1s/,
    });
  }],
  ["the KExec call fails", async (rig, before) => {
    const run = await prepare(rig, {}, {
      trigger: () => {
        throw new Error("org.freedesktop.DBus.Error.AccessDenied: KExec is not allowed");
      },
    });
    assert.equal(run.kexecCalls, 1);
    await expectRolledBack(rig, before, { ...run, kexecCalls: 0 }, {
      step: "kexec",
      message: /Issuing the kexec failed: .*AccessDenied/,
      undone: undoneThrough("phase-reboot"),
    });
  }],
  ["versions incompatible: the major differs", async (rig, before) => {
    await rig.setVersions("1.0", "2.0");
    await expectRefusedRecord(rig, before, await prepare(rig), "compat", /incompatible|major/i);
  }],
  ["versions incompatible: the target's minor is lower", async (rig, before) => {
    await rig.setVersions("1.2", "1.1");
    await expectRefusedRecord(rig, before, await prepare(rig), "compat", /incompatible|minor/i);
  }],
  ["the target's version is unknown", async (rig, before) => {
    await rig.setVersions("1.0", "");
    await expectRefusedRecord(rig, before, await prepare(rig), "compat", /unknown/i);
  }],
  ["the target's version metadata is malformed", async (rig, before) => {
    await rig.setVersions("1.0", "banana");
    await expectRefusedRecord(rig, before, await prepare(rig), "compat", /banana|LUO_VERSION/);
  }],
  ["unknown version allowed by --allow-unknown-version, then cancelled", async (rig, before) => {
    await rig.setVersions("1.0", "");
    const run = await prepare(rig, { allowUnknownVersion: true, stopAtPrepared: true });
    assert.equal(run.error, undefined, String(run.error));
    assert.equal(run.record?.status, "prepared");
    assert.equal(run.record?.compat.override, true);
    assert.equal(run.record?.overrides.length, 1);
    assert.match(run.record!.overrides[0]!, /--allow-unknown-version/);
    assert.equal((await rig.sim.status()).state, "prepared");
    const context = await rig.context();
    try {
      const cancelled = await runCancel(context.update);
      assert.equal(cancelled.action, "cancelled");
      assert.equal(cancelled.exitCode, ExitCode.Success);
    } finally {
      await context.close();
    }
    await assertConsistent(rig, before, { cancelPhase: true });
    const record = await lastRecord(rig);
    assert.equal(record.status, "cancelled");
    assert.equal(record.compat.override, true);
    assert.deepEqual((record.notes.rollback as { failures: unknown[] }).failures, []);
  }],
  ["the target command line lacks liveupdate", async (rig, before) => {
    await rig.setCmdline("root=/dev/vda ro kho=on\n");
    await expectRefusedRecord(rig, before, await prepare(rig), "cmdline", /no "liveupdate=on"/);
  }],
  ["the target command line has liveupdate=off", async (rig, before) => {
    await rig.setCmdline("root=/dev/vda ro liveupdate=off kho=on\n");
    await expectRefusedRecord(rig, before, await prepare(rig), "cmdline", /"liveupdate=off"/);
  }],
  ["the target command line lacks kho", async (rig, before) => {
    await rig.setCmdline("root=/dev/vda ro liveupdate=on\n");
    await expectRefusedRecord(rig, before, await prepare(rig), "cmdline", /no "kho=on"/);
  }],
  ["the target kernel is missing", async (rig, before) => {
    await rig.setConfig(`[target]\nkernel = "${rig.dir}/boot/vmlinuz-missing"\n`);
    await expectRefusedRecord(rig, before, await prepare(rig), "target", /does not exist/);
  }],
  ["the target initrd is missing", async (rig, before) => {
    await rig.setConfig(`[target]\ninitrd = "${rig.dir}/boot/initrd-missing"\n`);
    await expectRefusedRecord(rig, before, await prepare(rig), "target", /initrd.*does not exist/);
  }],
  ["the kernel is already prepared", async (rig) => {
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "1");
    const before = await hostState(rig);
    assert.equal(before.kernel, "prepared");
    await expectRefusedRecord(rig, before, await prepare(rig), "kernel", /"prepared"/);
  }],
  ["the kernel is in state updated", async (rig) => {
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "1");
    await rig.sim.kexec();
    const before = await hostState(rig);
    assert.equal(before.kernel, "updated");
    await expectRefusedRecord(rig, before, await prepare(rig), "kernel", /"updated"/);
  }],
  ["an attempt is already open", async (rig, before) => {
    const first = await prepare(rig, { stopAtPrepared: true });
    assert.equal(first.record?.status, "prepared");
    const file = `${rig.stateDir}/attempts/${first.record!.id}.json`;
    const text = await Deno.readTextFile(file);
    const during = await hostState(rig);
    const second = await prepare(rig);
    await expectRefused(rig, during, second, "record", /still "prepared".*recover/);
    assert.equal(await Deno.readTextFile(file), text, "the open attempt's record is untouched");
    assert.deepEqual(
      await rig.kexecLog(),
      [first.record!.plan.kexecArgs].map((a) => (a as string[]).join(" ")),
    );
    const context = await rig.context();
    try {
      assert.equal((await runCancel(context.update)).action, "cancelled");
    } finally {
      await context.close();
    }
    await assertConsistent(rig, before, { cancelPhase: true });
  }],
  ["prepared, then the kernel cancelled behind the agent's back: recover", async (rig, before) => {
    const first = await prepare(rig, { stopAtPrepared: true });
    assert.equal(first.record?.status, "prepared");
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "0");
    const resolution = await resolve(rig, "recover");
    assert.equal(resolution.action, "failed");
    assert.equal(resolution.exitCode, ExitCode.Failed);
    await assertConsistent(rig, before, { cancelPhase: true });
    const record = await lastRecord(rig);
    assert.equal(record.status, "failed");
    assert.match(record.outcome!.message, /was prepared, but the kernel is in state "normal"/);
  }],
  ["a device's ancestor lacks live-update support (EINVAL)", async (rig, before) => {
    const tree = smallTree();
    for (const device of tree.devices) {
      if (device.path === SMALL.unsupported) device.tags = ["liveupdate"];
    }
    const udev = `${rig.dir}/udev-unsupported`;
    await writeUdevDb(tree, udev);
    await rig.setConfig(`[paths]\nudev_db = "${udev}"\n`);
    const run = await prepare(rig);
    await expectRolledBack(rig, before, run, {
      step: "request-devices",
      message: /Step "request-devices" failed: .*0000:02:00\.0.*EINVAL/,
    });
    assert.match(run.log, /ancestor|0000:00:02\.0/);
  }],
  ["the disk is full from the start (no record can be written)", async (rig, before) => {
    const run = await prepare(rig, {}, { fs: diskFull(rig.stateDir, 0) });
    assert.ok(run.error instanceof RefusedError, String(run.error));
    assert.match(run.error.message, /disk is full \(ENOSPC\)/);
    await assertConsistent(rig, before);
    assert.deepEqual(await rig.kexecLog(), []);
    assert.equal(await rig.record(), undefined);
  }],
  ["the disk fills up in the middle of the journal", async (rig, before) => {
    // Five atomic writes succeed (the record, the journal, the device ownership
    // record); the sixth (load-kernel done) fails, and so does every save of the
    // rollback.
    const run = await prepare(rig, {}, { fs: diskFull(rig.stateDir, 5) });
    assert.ok(run.error instanceof UpdateFailedError, String(run.error));
    assert.match(run.error.message, /Step "load-kernel" failed: .*disk is full \(ENOSPC\)/);
    assert.match(run.error.message, /not complete: request-devices .*recover/);
    assert.match(run.error.message, /record could not be saved either/);
    // The kernel's side is undone all the same.
    await assertConsistent(rig, before, { cancelPhase: true });
    // The record on disk is still open (as far as it could be written): recover,
    // with space again, completes the rollback and changes nothing on the host.
    const open = await lastRecord(rig);
    assert.equal(open.status, "preparing");
    assert.deepEqual(open.steps.map((s) => [s.name, s.status]), [
      ["request-devices", "done"],
      ["load-kernel", "started"],
    ]);
    const resolution = await resolve(rig, "recover");
    assert.equal(resolution.action, "rolled-back", resolution.message);
    await assertConsistent(rig, before, { cancelPhase: true });
    assertRecord(await lastRecord(rig), {
      status: "rolled-back",
      step: "load-kernel",
      message: /interrupted during step "load-kernel"/,
      undone: ["load-kernel", "request-devices"],
    });
    assert.equal((await recoverAgain(rig)).action, "nothing");
  }],
  ["the state directory is not writable", async (rig, before) => {
    await Deno.writeTextFile(`${rig.dir}/not-a-dir`, "");
    await rig.setConfig(`[paths]\nstate_dir = "${rig.dir}/not-a-dir/state"\n`);
    const run = await prepare(rig);
    assert.ok(run.error instanceof RefusedError, String(run.error));
    assert.match(run.error.message, /not-a-dir\/state/);
    await assertConsistent(rig, before);
    assert.deepEqual(await rig.kexecLog(), []);
  }],
  ["the bus connection drops in the middle of a phase", async (rig, before) => {
    await rig.setConfig('[phases.prepare]\nstart = ["slow.service"]\ntimeout = "60s"\n');
    const context = await rig.context({
      onJournal: (step, status) => {
        if (step !== "phase-prepare" || status !== "started") return;
        closing = (async () => {
          while ((await rig.unitStates(["slow.service"]))["slow.service"] !== "activating") {
            await sleep(50);
          }
          await (await context.update.systemd()).close();
        })();
      },
    });
    let closing: Promise<void> | undefined;
    let error: unknown;
    try {
      await runPrepare(context.update);
    } catch (e) {
      error = e;
    } finally {
      await closing;
      await context.close();
    }
    assert.ok(error instanceof UpdateFailedError, String(error));
    assert.match(error.message, /D-Bus/);
    assert.match(error.message, /recover/);
    // What needs no bus was undone; the record stays open and says what is left.
    const record = await lastRecord(rig);
    assert.equal(record.status, "rolling-back");
    const rollback = record.notes.rollback as {
      undone: string[];
      failures: { step: string; error: string }[];
    };
    assert.deepEqual(rollback.undone, ["load-kernel", "request-devices"]);
    assert.deepEqual(rollback.failures.map((f) => f.step), ["phase-prepare"]);
    assert.match(rollback.failures[0]!.error, /D-Bus/);
    const midway = await hostState(rig);
    assert.equal(midway.kernel, "normal");
    assert.equal(midway.kexecLoaded, false);
    assert.deepEqual(midway.requested, before.requested);
    // A later recover, with a fresh connection, completes the rollback (the slow
    // oneshot, stopped while it started, ends "failed").
    const resolution = await resolve(rig, "recover");
    assert.equal(resolution.action, "rolled-back", resolution.message);
    await assertConsistent(rig, before, { cancelPhase: true, failed: ["slow.service"] });
    assertRecord(await lastRecord(rig), {
      status: "rolled-back",
      step: "phase-prepare",
      message: /D-Bus/,
    });
  }],
  ["SIGTERM before the first step", async (rig, before) => {
    const controller = new AbortController();
    controller.abort(new Error("The agent received SIGTERM before the kexec."));
    const run = await prepare(rig, { signal: controller.signal });
    assert.ok(run.error instanceof RolledBackError, String(run.error));
    assert.match(run.error.message, /Stopped at step "request-devices": .*SIGTERM/);
    // Nothing had been touched: not even phase "cancel" runs.
    await assertConsistent(rig, before, { cancelPhase: false });
    assert.deepEqual(await rig.kexecLog(), []);
    assertRecord(await lastRecord(rig), {
      status: "rolled-back",
      step: "request-devices",
      message: /SIGTERM/,
      undone: [],
    });
  }],
  ["a second prepare while one runs", async (rig, before) => {
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let paused!: () => void;
    const reached = new Promise<void>((r) => paused = r);
    const first = prepare(rig, { stopAtPrepared: true }, {
      onJournal: async (step, status) => {
        if (step === "phase-prepare" && status === "started") {
          paused();
          await held;
        }
      },
    });
    await reached;
    const second = await prepare(rig);
    release();
    assert.ok(second.error instanceof BusyError, String(second.error));
    assert.equal(second.error.exitCode, ExitCode.Busy);
    assert.match(second.error.message, /Another live-update operation \(pid \d+\)/);
    const done = await first;
    assert.equal(done.record?.status, "prepared");
    const context = await rig.context();
    try {
      assert.equal((await runCancel(context.update)).action, "cancelled");
    } finally {
      await context.close();
    }
    await assertConsistent(rig, before, { cancelPhase: true });
  }],
];

Deno.test("prepare fault matrix", async (t) => {
  await using rig = await startUpdateRig();
  for (const [name, run] of CASES) {
    await t.step(name, async () => {
      const before = await resetRig(rig);
      await run(rig, before);
    });
  }
});

Deno.test("the README's fault matrix lists every case of this file", async () => {
  await assertListedInReadme(CASES.map(([name]) => name));
});

/**
 * The fault matrix after the kexec is issued, in process, on one rig: a REBOOT
 * callback that fails (with systemd's cold-reboot fallback, and without it), and
 * `finish` in the new kernel with failing or hanging phase units, devices nobody
 * reclaims, a booted kernel that is not the target, and no record at all. The
 * README's "Fault matrix" lists every case.
 */

import assert from "node:assert/strict";
import { ExitCode } from "../../agent/exit_codes.ts";
import { resolveUpdate, runPrepare, type RunPrepareOptions } from "../../agent/update/mod.ts";
import {
  assertConsistent,
  assertListedInReadme,
  assertRecord,
  type HostState,
  hostState,
  lastRecord,
  resetRig,
  SERVICES,
  TARGETS,
  undoneThrough,
} from "./_update_faults.ts";
import { type RigContextOptions, SMALL, startUpdateRig, type UpdateRig } from "./_update_rig.ts";

async function prepare(
  rig: UpdateRig,
  options: RunPrepareOptions = {},
  contextOptions: RigContextOptions = {},
) {
  const context = await rig.context(contextOptions);
  try {
    const record = await runPrepare(context.update, options);
    assert.equal(context.kexecCalls(), 1);
    return record;
  } finally {
    await context.close();
  }
}

async function resolve(rig: UpdateRig, mode: "finish" | "recover") {
  const context = await rig.context();
  try {
    return { ...await resolveUpdate(context.update, mode), log: context.host.stderr.text() };
  } finally {
    await context.close();
  }
}

/** The drivers reclaim every preserved device (what restore.service stands for). */
async function reclaimAll(rig: UpdateRig): Promise<void> {
  for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
}

/** Units after a finished update (the rig's manager does not reboot with the kernel). */
const FINISHED: Record<string, string> = {
  "vmm.service": "active",
  "checkpoint.service": "active",
  "restore.service": "active",
  "liveupdate-updated.target": "active",
  "liveupdate-finish.target": "active",
};

/** Asserts the new kernel ended finished: state normal, nothing requested or loaded, no lock. */
async function assertFinished(
  rig: UpdateRig,
  before: HostState,
  units: Record<string, string> = {},
  failed: string[] = [],
): Promise<void> {
  const expected = Object.fromEntries(
    [...SERVICES, ...TARGETS].map((name) => [name, "inactive"]),
  );
  await assertConsistent(rig, { ...before, units: expected }, {
    kernel: "normal",
    units: { ...FINISHED, ...units },
    failed,
  });
}

/** Asserts that `finish` found the update did not happen and rolled back. */
async function expectNotHappened(rig: UpdateRig, before: HostState, mode: "finish" | "recover") {
  const resolution = await resolve(rig, mode);
  assert.equal(resolution.action, "not-happened", resolution.message);
  assert.equal(resolution.exitCode, ExitCode.Failed);
  assert.match(resolution.message, /did not happen/);
  await assertConsistent(rig, before, { cancelPhase: true });
  assertRecord(await lastRecord(rig), {
    status: "failed",
    step: "kexec",
    message: /did not happen.*rolled back/,
    undone: undoneThrough("phase-reboot"),
  });
  const again = await resolve(rig, mode);
  assert.equal(again.action, "nothing");
  await assertConsistent(rig, before, { cancelPhase: true });
}

type Case = [name: string, run: (rig: UpdateRig, before: HostState) => Promise<void>];

const CASES: Case[] = [
  ["REBOOT callback fails; systemd falls back to a cold reboot; finish", async (rig, before) => {
    await rig.sim.failNextReboot("kvm", "EIO");
    const record = await prepare(rig);
    assert.equal(record.status, "kexec-issued");
    const status = await rig.sim.status();
    assert.equal(status.state, "normal");
    assert.equal((await rig.sim.events()).filter((e) => e.type === "boot").at(-1)?.kind, "cold");
    await expectNotHappened(rig, before, "finish");
  }],
  ["REBOOT fails in a preserved device (cold reboot); finish", async (rig, before) => {
    await rig.sim.failNextReboot({ device: SMALL.selected[0]! }, "ENODEV");
    assert.equal((await prepare(rig)).status, "kexec-issued");
    await expectNotHappened(rig, before, "finish");
  }],
  ["REBOOT interrupted (EAGAIN on the state lock; cold reboot); finish", async (rig, before) => {
    await prepare(rig, {}, {
      onJournal: async (step) => {
        if (step === "kexec") await rig.sim.eagainNext(1);
      },
    });
    await expectNotHappened(rig, before, "finish");
  }],
  [
    "REBOOT fails and there is no fallback: the old kernel runs on; recover",
    async (rig, before) => {
      await rig.sim.failNextReboot("interrupts", "EBUSY");
      let result;
      const record = await prepare(rig, {}, {
        trigger: async () => {
          result = await rig.kexec({ fallback: false });
        },
      });
      assert.equal(record.status, "kexec-issued");
      assert.deepEqual(
        { reboot: result!["reboot"], fallback: result!["fallback"] },
        { reboot: "failed", fallback: "none" },
      );
      assert.equal(await rig.kexecLoaded(), true, "the target is still loaded");
      assert.equal((await hostState(rig)).units["vmm.service"], "inactive");
      await expectNotHappened(rig, before, "recover");
    },
  ],
  ["finish: a unit of phase updated fails (the kernel is finished all the same)", async (
    rig,
    before,
  ) => {
    await rig.setConfig(
      '[phases.updated]\nstart = ["restore.service", "vmm.service", "broken.service"]\n',
    );
    await prepare(rig);
    await reclaimAll(rig);
    const resolution = await resolve(rig, "finish");
    assert.equal(resolution.action, "finished-with-errors");
    assert.equal(resolution.exitCode, ExitCode.Failed);
    assertRecord(await lastRecord(rig), {
      status: "failed",
      step: "phase-updated",
      message: /finished in the kernel, but 1 step\(s\) failed: phase-updated: .*broken\.service/,
    });
    await assertFinished(rig, before, {}, ["broken.service"]);
  }],
  ["finish: a unit of phase updated times out", async (rig) => {
    await rig.setConfig(
      '[phases.updated]\nstart = ["restore.service", "vmm.service", "slow.service"]\n' +
        'timeout = "2s"\n',
    );
    await prepare(rig);
    await reclaimAll(rig);
    const resolution = await resolve(rig, "finish");
    assert.equal(resolution.action, "finished-with-errors");
    assertRecord(await lastRecord(rig), {
      status: "failed",
      step: "phase-updated",
      message: /phase-updated: .*timed out .*slow\.service/,
    });
    // The phase stopped waiting: its target and the units after the slow one may
    // not have started; the kernel is finished regardless.
    const after = await hostState(rig);
    assert.equal(after.kernel, "normal");
    assert.equal(after.kexecLoaded, false);
    assert.equal(after.lockHeld, false);
    assert.notEqual(after.units["slow.service"], "active");
  }],
  ["finish: a unit of phase finish fails", async (rig, before) => {
    await rig.setConfig('[phases.finish]\nstart = ["broken.service"]\n');
    await prepare(rig);
    await reclaimAll(rig);
    const resolution = await resolve(rig, "finish");
    assert.equal(resolution.action, "finished-with-errors");
    assertRecord(await lastRecord(rig), {
      status: "failed",
      step: "phase-finish",
      message: /phase-finish: .*broken\.service/,
    });
    await assertFinished(rig, before, {}, ["broken.service"]);
  }],
  ["finish: a unit of phase finish times out", async (rig) => {
    await rig.setConfig('[phases.finish]\nstart = ["slow.service"]\ntimeout = "2s"\n');
    await prepare(rig);
    await reclaimAll(rig);
    const resolution = await resolve(rig, "finish");
    assert.equal(resolution.action, "finished-with-errors");
    assertRecord(await lastRecord(rig), {
      status: "failed",
      step: "phase-finish",
      message: /phase-finish: .*timed out .*slow\.service/,
    });
    const after = await hostState(rig);
    assert.equal(after.kernel, "normal");
    assert.equal(after.lockHeld, false);
  }],
  ["finish: preserved devices are not reclaimed in time", async (rig, before) => {
    await prepare(rig);
    await rig.sim.setReclaimed(SMALL.ancestors[0]!);
    await rig.sim.setReclaimed(SMALL.ancestors[1]!);
    await rig.sim.setReclaimed(SMALL.selected[0]!);
    const resolution = await resolve(rig, "finish");
    assert.equal(resolution.action, "finished", resolution.message);
    const record = await lastRecord(rig);
    assert.equal(record.status, "succeeded");
    assert.deepEqual(record.notes.devices, {
      selected: 2,
      preserved: 4,
      reclaimed: 3,
      unreclaimed: 1,
      unreclaimed_devices: [{ path: SMALL.selected[1], unit: "vm-b.service" }],
    });
    assert.match(resolution.log, /0000:01:00\.1" was not reclaimed within 2s; vm-b\.service/);
    await assertFinished(rig, before);
  }],
  ["finish: the booted kernel is not the target", async (rig, before) => {
    await prepare(rig);
    await reclaimAll(rig);
    await Deno.writeTextFile(`${rig.proc}/sys/kernel/osrelease`, "6.19.9-someone-else\n");
    const resolution = await resolve(rig, "finish");
    assert.equal(resolution.action, "finished-with-errors");
    assert.equal(resolution.exitCode, ExitCode.Failed);
    const record = await lastRecord(rig);
    assertRecord(record, {
      status: "failed",
      step: "verify",
      message: /verify: The booted kernel is "6\.19\.9-someone-else", but the update targeted/,
    });
    assert.deepEqual(record.notes.verification, [
      'The booted kernel is "6.19.9-someone-else", but the update targeted "6.19.1-lu-new".',
    ]);
    assert.match(resolution.log, /version-mismatch|booted kernel is/);
    await assertFinished(rig, before);
  }],
  ["finish: the kernel is updated but no record exists", async (rig, before) => {
    await prepare(rig);
    await reclaimAll(rig);
    await Deno.remove(rig.stateDir, { recursive: true });
    const resolution = await resolve(rig, "finish");
    assert.equal(resolution.action, "finished", resolution.message);
    const record = await lastRecord(rig);
    assert.equal(record.status, "succeeded");
    assert.equal(record.notes.adopted, true);
    await assertFinished(rig, before);
  }],
  ["finish with nothing to finish", async (rig, before) => {
    const resolution = await resolve(rig, "finish");
    assert.equal(resolution.action, "nothing");
    assert.equal(resolution.exitCode, ExitCode.Success);
    await assertConsistent(rig, before);
    assert.equal(await rig.record(), undefined, "nothing was written");
  }],
];

Deno.test("kexec and finish fault matrix", async (t) => {
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

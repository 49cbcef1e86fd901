/**
 * A whole live update on the simulated kernel and a real systemd manager:
 * prepare → (simulated) kexec → finish, with units, devices, versions and the
 * record checked at every step.
 */

import assert from "node:assert/strict";
import { resolveUpdate, runPrepare } from "../../agent/update/mod.ts";
import { RUNNING_RELEASE, SMALL, startUpdateRig, TARGET_RELEASE } from "./_update_rig.ts";

Deno.test("a full live update: prepare, kexec, finish", async () => {
  await using rig = await startUpdateRig();
  await rig.start("vmm.service");
  assert.deepEqual(await rig.unitStates(["vmm.service", "checkpoint.service"]), {
    "vmm.service": "active",
    "checkpoint.service": "inactive",
  });

  // Prepare, up to the kexec.
  const before = await rig.context();
  let record;
  try {
    record = await runPrepare(before.update);
  } finally {
    await before.close();
  }
  assert.equal(record.status, "kexec-issued");
  assert.equal(before.kexecCalls(), 1);
  assert.deepEqual(
    record.steps.map((s) => [s.name, s.status]),
    [
      ["request-devices", "done"],
      ["load-kernel", "done"],
      ["phase-prepare", "done"],
      ["prepare-kernel", "done"],
      ["phase-reboot", "done"],
    ],
  );
  assert.equal(record.kernels.running.release, RUNNING_RELEASE);
  assert.equal(record.kernels.target.release, TARGET_RELEASE);
  assert.equal(record.kernels.running.luo_version, "1.0");
  assert.equal(record.compat.verdict, "compatible");
  assert.match(String(record.kernels.target.cmdline), /liveupdate=on kho=on$/);
  const [load] = await rig.kexecLog();
  assert.match(
    load!,
    new RegExp(
      `^-s -l .*/vmlinuz-${TARGET_RELEASE} --initrd=.* --command-line=root=/dev/vda ro liveupdate=on kho=on$`,
    ),
  );
  const onDisk = await rig.record();
  assert.equal(onDisk?.status, "kexec-issued");
  assert.ok(onDisk?.timings.kexec_issued);

  // The simulated kexec happened (the trigger): the new boot is "updated".
  const status = await rig.sim.status();
  assert.equal(status.state, "updated");
  for (const path of [...SMALL.selected, ...SMALL.ancestors]) {
    assert.deepEqual(
      await rig.flags(path),
      { requested: false, preserved: true, reclaimed: false },
      path,
    );
  }
  assert.equal((await rig.flags(SMALL.untagged)).preserved, false);
  // The prepare phase stopped the VMM and ran the checkpoint.
  assert.deepEqual(await rig.unitStates(["vmm.service", "checkpoint.service"]), {
    "vmm.service": "inactive",
    "checkpoint.service": "active",
  });

  // The drivers (the restore) reclaim the devices while finish waits.
  const reclaim = (async () => {
    await new Promise((r) => setTimeout(r, 300));
    for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
  })();
  const after = await rig.context();
  let resolution;
  try {
    resolution = await resolveUpdate(after.update, "finish");
  } finally {
    await after.close();
    await reclaim;
  }
  assert.equal(resolution.action, "finished");
  assert.equal(resolution.exitCode, 0);
  const done = (await rig.record())!;
  assert.equal(done.status, "succeeded");
  assert.equal(done.outcome?.result, "succeeded");
  assert.deepEqual(
    done.steps.slice(5).map((s) => [s.name, s.status]),
    [
      ["verify", "done"],
      ["phase-updated", "done"],
      ["reclaim-devices", "done"],
      ["finish-kernel", "done"],
      ["phase-finish", "done"],
      ["forget-devices", "done"],
    ],
  );
  assert.deepEqual(done.notes.devices, { selected: 2, preserved: 4, reclaimed: 4, unreclaimed: 0 });
  assert.equal(done.notes.verification, undefined, "booted kernel and versions match");
  assert.equal((await rig.sim.status()).state, "normal");
  assert.deepEqual(await rig.unitStates(["vmm.service", "restore.service"]), {
    "vmm.service": "active",
    "restore.service": "active",
  });
  assert.ok(typeof done.timings.kexec_to_finish_ms === "number");

  // Running finish again changes nothing.
  const again = await rig.context();
  try {
    const second = await resolveUpdate(again.update, "finish");
    assert.equal(second.action, "nothing");
  } finally {
    await again.close();
  }
});

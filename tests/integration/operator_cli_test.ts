/**
 * The operator's surface against the simulated machine: every `--json` document
 * of a whole update (check, status, prepare, finish, recover, cancel, history,
 * devices, wait) validated against its published schema, and `wait` gating on
 * the simulated kernel and the records.
 */

import assert from "node:assert/strict";
import { runCli } from "../../agent/cli/mod.ts";
import { createTestHost, libcKernelFs } from "../../agent/host/mod.ts";
import { dbusNextConnector } from "../../agent/systemd/dbus_next.ts";
import { assertDocument } from "../tools/assert_document.ts";
import { SMALL, startUpdateRig, type UpdateRig } from "./_update_rig.ts";

async function cli(rig: UpdateRig, ...argv: string[]) {
  const host = createTestHost({ dbus: dbusNextConnector });
  const code = await runCli([...argv, `--config-root=${rig.configRoot}`], host, {
    platform: { libc: () => rig.libc, kernelFs: () => libcKernelFs(rig.libc) },
  });
  return { code, stdout: host.stdout.text(), stderr: host.stderr.text() };
}

function reclaimAll(rig: UpdateRig): Promise<void> {
  return (async () => {
    for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
  })();
}

Deno.test("every --json document of a whole update matches its schema", async () => {
  await using rig = await startUpdateRig();
  await rig.start("vmm.service");

  const checkText = await cli(rig, "check");
  assert.equal(checkText.code, 0, checkText.stderr);
  assert.match(
    checkText.stdout,
    /^● check: prepare would go ahead\n +Target: .*vmlinuz-6\.19\.1-lu-new \(6\.19\.1-lu-new\)\n/,
  );
  assert.match(checkText.stdout, /\n +Devices: 2 selected, 2 ancestor\(s\) preserved with them/);
  assert.match(
    checkText.stdout,
    /\n +Phases: prepare +stop \[vmm\.service\] start \[checkpoint\.service, liveupdate-prepare\.target\]\n/,
  );
  const check = await cli(rig, "check", "--json");
  assert.equal(check.code, 0, check.stderr);
  assert.equal(assertDocument("check", check.stdout).ok, true);
  const idle = assertDocument("status", (await cli(rig, "status", "--json")).stdout);
  assert.equal(idle.summary.state, "idle");
  assert.equal(idle.summary.sentence, "No update recorded.");
  assertDocument("devices", (await cli(rig, "devices", "--json")).stdout);

  const prepare = await cli(rig, "prepare", "--json");
  assert.equal(prepare.code, 0, prepare.stderr);
  const issued = assertDocument("attempt", prepare.stdout);
  assert.equal(issued.status, "kexec-issued");
  const updating = assertDocument("status", (await cli(rig, "status", "--json")).stdout);
  assert.equal(updating.summary.state, "updating");
  assert.equal(updating.summary.attempt, issued.id);
  assert.equal(updating.kernel.state, "updated");

  // A fleet tool waits for the update to end while the new kernel finishes it.
  const waiting = cli(rig, "wait", "--for=finished", "--timeout=2min", "--json");
  const reclaim = reclaimAll(rig);
  const finish = await cli(rig, "finish", "--json");
  await reclaim;
  assert.equal(finish.code, 0, finish.stderr);
  const finished = assertDocument("resolution", finish.stdout);
  assert.equal(finished.action, "finished");
  assert.equal(finished.attempt.status, "succeeded");
  const waited = await waiting;
  assert.equal(waited.code, 0, waited.stderr);
  const report = assertDocument("wait", waited.stdout);
  assert.equal(report.reached, true);
  assert.equal(report.attempt.id, issued.id);

  const history = assertDocument("history", (await cli(rig, "history", "--json")).stdout);
  assert.deepEqual(history.attempts.map((a: { status: string }) => a.status), ["succeeded"]);
  const record = assertDocument("attempt", (await cli(rig, "history", issued.id, "--json")).stdout);
  assert.equal(record.outcome.result, "succeeded");
  const recover = await cli(rig, "recover", "--json");
  assert.equal(assertDocument("resolution", recover.stdout).action, "nothing");
  const after = assertDocument("status", (await cli(rig, "status", "--json")).stdout);
  assert.equal(after.summary.state, "idle");
  assert.equal(after.summary.sentence, `The last update ${issued.id} succeeded.`);
  assert.equal(after.attempts.recent[0].status, "succeeded");
  assert.equal(after.compat.running.release, "6.19.1-lu-new", "status reads the stage's /proc");

  // A prepared update an operator cancels: wait --for=finished reports it as not done (1).
  await rig.start("vmm.service");
  const prepared = await cli(rig, "prepare", "--no-kexec", "--json");
  assert.equal(prepared.code, 0, prepared.stderr);
  assert.equal(assertDocument("attempt", prepared.stdout).status, "prepared");
  const stillOpen = await cli(rig, "wait", "--for=finished", "--timeout=300ms", "--json");
  assert.equal(stillOpen.code, 8);
  assert.equal(assertDocument("wait", stillOpen.stdout).attempt.status, "prepared");
  const cancel = await cli(rig, "cancel", "--json");
  assert.equal(cancel.code, 0, cancel.stderr);
  assert.equal(assertDocument("resolution", cancel.stdout).action, "cancelled");
  const cancelled = await cli(rig, "wait", "--for=finished", "--timeout=10s", "--json");
  assert.equal(cancelled.code, 1);
  assert.equal(assertDocument("wait", cancelled.stdout).attempt.status, "cancelled");
});

Deno.test("wait --for=normal follows the simulated kernel, and times out with exit 8", async () => {
  await using rig = await startUpdateRig();
  const normal = await cli(rig, "wait", "--for=normal", "--timeout=10s", "--json");
  assert.equal(normal.code, 0, normal.stderr);
  assert.equal(assertDocument("wait", normal.stdout).state, "normal");

  await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "1");
  const timeout = await cli(rig, "wait", "--for=normal", "--timeout=300ms", "--json");
  assert.equal(timeout.code, 8);
  const report = assertDocument("wait", timeout.stdout);
  assert.equal(report.reached, false);
  assert.equal(report.state, "prepared");

  const waiting = cli(rig, "wait", "--for=normal", "--timeout=2min");
  await rig.sim.pollersWaiting(1);
  await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "0");
  const done = await waiting;
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stderr, /The kernel's live-update state is "normal"\./);
});

/**
 * The update flow with an etcd fleet, in process, on the rehearsal host of the
 * integration tier (simulated kernel, private systemd): where the slot is taken,
 * made permanent, released, kept and abandoned, and what the record, the
 * journal, `status` and the metrics show.
 */

import assert from "node:assert/strict";
import { runCli } from "../../agent/cli/mod.ts";
import { EtcdClient, FleetSlotKeptError, readFleetState } from "../../agent/fleet/mod.ts";
import { createTestHost, libcKernelFs } from "../../agent/host/mod.ts";
import type { AttemptRecord } from "../../agent/store/mod.ts";
import {
  type FleetNotes,
  RefusedError,
  resolveUpdate,
  RolledBackError,
  runCancel,
  runPrepare,
} from "../../agent/update/mod.ts";
import {
  SMALL,
  startUpdateRig,
  TARGET_RELEASE,
  type UpdateRig,
} from "../integration/_update_rig.ts";
import { type EtcdCluster, startEtcd } from "./etcd_harness.ts";
import { etcdToml } from "./helpers.ts";
import { waitFor } from "./wait.ts";

const PREFIX = "/liveupdate/fleet/";

function fleetOf(record: AttemptRecord | undefined): FleetNotes {
  const notes = record?.notes.fleet as FleetNotes | undefined;
  assert.ok(notes, "the record has notes.fleet");
  return notes;
}

function kinds(record: AttemptRecord | undefined): string[] {
  return fleetOf(record).decisions.map((d) => d.kind).filter((kind) => kind !== "slot-busy");
}

/** The holder keys of the fleet: host → "lease" or "permanent", and the halt marks. */
async function etcdSlots(etcd: EtcdCluster): Promise<{ holders: string[]; halts: string[] }> {
  const client = new EtcdClient({
    endpoints: etcd.endpoints,
    requestTimeoutMs: 5000,
    httpClient: Deno.createHttpClient({}),
  });
  try {
    const groups = await client.range(`${PREFIX}groups/`, { prefix: true });
    const halts = await client.range(`${PREFIX}halt/`, { prefix: true });
    return {
      holders: groups.kvs.map((kv) =>
        `${kv.key.split("/").at(-1)}:${kv.lease === "0" ? "permanent" : "lease"}:` +
        JSON.parse(kv.value).state
      ),
      halts: halts.kvs.map((kv) => kv.key.slice(`${PREFIX}halt/`.length)),
    };
  } finally {
    client.close();
  }
}

function fleetToml(etcd: EtcdCluster, host: string, extra = ""): string {
  return etcdToml({
    endpoints: etcd.endpoints,
    host,
    slots: 1,
    retry: "100ms",
    waitTimeout: "2min",
    leaseTtl: "3s",
    healthUnits: ["vmm.service"],
    extra,
  });
}

/** Every attempt record of the rig, oldest first (ids sort by the second only). */
async function records(rig: UpdateRig): Promise<AttemptRecord[]> {
  const list: AttemptRecord[] = [];
  for await (const entry of Deno.readDir(`${rig.stateDir}/attempts`)) {
    if (!entry.name.endsWith(".json")) continue;
    list.push(JSON.parse(await Deno.readTextFile(`${rig.stateDir}/attempts/${entry.name}`)));
  }
  return list.sort((a, b) => a.created.localeCompare(b.created));
}

async function newest(rig: UpdateRig): Promise<AttemptRecord> {
  return (await records(rig)).at(-1)!;
}

async function reclaimAll(rig: UpdateRig): Promise<void> {
  for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
}

async function prepare(
  rig: UpdateRig,
  options: Parameters<typeof runPrepare>[1] = {},
  onJournal?: (step: string, status: string) => Promise<void>,
): Promise<AttemptRecord> {
  const context = await rig.context(onJournal ? { onJournal } : {});
  try {
    return await runPrepare(context.update, options);
  } finally {
    await context.close();
  }
}

async function finish(rig: UpdateRig) {
  const context = await rig.context();
  try {
    return { resolution: await resolveUpdate(context.update, "finish"), log: context.host };
  } finally {
    await context.close();
  }
}

Deno.test("fleet flow: the slot is taken before anything changes, made permanent before 1 > prepare, released after a healthy finish", async () => {
  await using etcd = await startEtcd();
  // A window that is closed now: --now starts anyway, and that is recorded.
  const today = new Date().getUTCDay();
  const otherDay = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"][(today + 3) % 7];
  await using rig = await startUpdateRig({
    config: fleetToml(etcd, "host-a") +
      `[fleet.window]\ndays = ["${otherDay}"]\nstart = "00:00"\nlength = "1h"\n`,
  });
  // The metrics file lives in the rig's directory (removed with the rig).
  const metricsFile = `${rig.dir}/metrics/liveupdate.prom`;
  await Deno.mkdir(`${rig.dir}/metrics`, { recursive: true });
  await rig.dropIn("70-metrics", `[metrics]\nfile = "${metricsFile}"\n`);
  await rig.start("vmm.service");
  const seen: Record<string, string[]> = {};
  const record = await prepare(
    rig,
    { fleetOverride: { reason: "--now: test" } },
    async (step, status) => {
      if (status === "done") seen[step] = (await etcdSlots(etcd)).holders;
    },
  );
  assert.equal(record.status, "kexec-issued");
  assert.deepEqual(record.steps.map((s) => [s.name, s.status]), [
    ["fleet-slot", "done"],
    ["request-devices", "done"],
    ["load-kernel", "done"],
    ["phase-prepare", "done"],
    ["fleet-persist", "done"],
    ["prepare-kernel", "done"],
    ["phase-reboot", "done"],
  ]);
  // Lease-bound through the undo-able steps, permanent from just before 1 > prepare.
  assert.deepEqual(seen["fleet-slot"], ["host-a:lease:updating"]);
  assert.deepEqual(seen["phase-prepare"], ["host-a:lease:updating"]);
  assert.deepEqual(seen["fleet-persist"], ["host-a:permanent:updating"]);
  assert.deepEqual(seen["phase-reboot"], ["host-a:permanent:updating"]);
  const notes = fleetOf(record);
  assert.equal(notes.state, "persistent");
  assert.equal(notes.backend, "etcd");
  assert.equal(notes.slot?.key, `${PREFIX}groups/default/holders/host-a`);
  assert.equal(notes.override, "--now: test");
  assert.ok(record.overrides.some((o) => o.startsWith("fleet.window:") && o.includes("--now")));
  assert.deepEqual(kinds(record), ["window-override", "slot-acquired", "slot-persisted"]);
  assert.ok(record.timings.slot_acquired! <= record.steps[0]!.started);
  const runtime = `${rig.dir}/run`;
  assert.equal((await readFleetState(Deno, runtime))?.phase, "persistent");

  // The new kernel: the drivers reclaim, finish runs, the slot goes back.
  await reclaimAll(rig);
  const { resolution, log } = await finish(rig);
  assert.equal(resolution.action, "finished", resolution.message);
  const done = await newest(rig);
  assert.equal(done.status, "succeeded");
  assert.equal(done.kernels.target.release, TARGET_RELEASE);
  assert.equal(fleetOf(done).state, "released");
  assert.deepEqual(kinds(done), [
    "window-override",
    "slot-acquired",
    "slot-persisted",
    "slot-resumed",
    "health-passed",
    "slot-released",
  ]);
  const passed = fleetOf(done).decisions.find((d) => d.kind === "health-passed")!;
  assert.match(String(passed.fields.checks), /units-active: 1 unit\(s\) active/);
  assert.match(String(passed.fields.checks), /devices-reclaimed: every preserved device/);
  assert.ok(done.timings.healthy! <= done.timings.slot_released!);
  assert.deepEqual(await etcdSlots(etcd), { holders: [], halts: [] });
  assert.match(log.stderr.text(), /Released the fleet slot of group "default"/);
  // status and the metrics show where the fleet part stands.
  assert.equal((await readFleetState(Deno, runtime))?.phase, "released");
  const status = createTestHost();
  const platform = { libc: () => rig.libc, kernelFs: () => libcKernelFs(rig.libc) };
  assert.equal(
    await runCli(["status", `--config-root=${rig.configRoot}`], status, { platform }),
    0,
    status.stderr.text(),
  );
  assert.match(status.stdout.text(), /Fleet.*etcd, group default: released/);
  const metrics = await Deno.readTextFile(metricsFile);
  assert.match(
    metrics,
    /liveupdate_fleet_phase\{group="default",backend="etcd",phase="released"\} 1/,
  );
  assert.match(metrics, /liveupdate_fleet_slot_held\{group="default",backend="etcd"\} 0/);
  assert.match(metrics, /liveupdate_last_attempt_result\{result="succeeded"\} 1/);
});

Deno.test("fleet flow: a failed prepare keeps its slot and halts the rollout; fleet release frees it", async () => {
  await using etcd = await startEtcd();
  await using rig = await startUpdateRig({ config: fleetToml(etcd, "host-b") });
  await rig.start("vmm.service");
  await rig.dropIn(
    "60-broken",
    '[phases.prepare]\nstart = ["checkpoint.service", "broken.service"]\n',
  );
  const context = await rig.context();
  try {
    await assert.rejects(runPrepare(context.update), RolledBackError);
  } finally {
    await context.close();
  }
  const failed = await newest(rig);
  assert.equal(failed.status, "rolled-back");
  assert.equal(fleetOf(failed).state, "kept");
  assert.deepEqual(kinds(failed), ["window-open", "slot-acquired", "slot-kept"]);
  const kept = fleetOf(failed).decisions.at(-1)!;
  assert.match(String(kept.fields.reason), /Step "phase-prepare" failed/);
  assert.deepEqual(await etcdSlots(etcd), {
    holders: ["host-b:permanent:failed"],
    halts: ["default/host-b"],
  });
  assert.match(context.host.stderr.text(), /Keeping the fleet slot of group "default"/);
  assert.deepEqual(await rig.unitStates(["vmm.service"]), { "vmm.service": "active" });

  // The next prepare of this host is refused at once: it keeps a slot.
  await rig.dropIn("60-broken", undefined);
  await assert.rejects(prepare(rig), FleetSlotKeptError);
  const refused = await newest(rig);
  assert.equal(refused.status, "refused");
  assert.equal(refused.outcome?.exit_code, 5);
  assert.match(refused.outcome!.message, /keeps a slot in group "default"/);
  assert.equal(fleetOf(refused).state, "none");
  assert.equal(refused.steps.length, 0);

  // The operator looks, frees it; the update goes through.
  const operator = createTestHost();
  assert.equal(
    await runCli(["fleet", "release", "host-b", `--config-root=${rig.configRoot}`], operator),
    0,
    operator.stderr.text(),
  );
  assert.deepEqual(await etcdSlots(etcd), { holders: [], halts: [] });
  const record = await prepare(rig);
  assert.equal(record.status, "kexec-issued");
  await reclaimAll(rig);
  const last = await finish(rig);
  assert.equal(last.resolution.action, "finished");
  assert.deepEqual(await etcdSlots(etcd), { holders: [], halts: [] });
});

Deno.test("fleet flow: preflight refusing after the wait abandons the slot; nothing changed", async () => {
  await using etcd = await startEtcd();
  await using rig = await startUpdateRig({ config: fleetToml(etcd, "host-c") });
  await rig.start("vmm.service");
  // Another host holds the only slot.
  const client = new EtcdClient({
    endpoints: etcd.endpoints,
    requestTimeoutMs: 5000,
    httpClient: Deno.createHttpClient({}),
  });
  const other = `${PREFIX}groups/default/holders/host-other`;
  try {
    await client.txn(
      [],
      [{ put: { key: other, value: JSON.stringify({ id: "host-other" }) } }],
      [],
    );
    const waiting = prepare(rig);
    await waitFor(
      async () => (await readFleetState(Deno, `${rig.dir}/run`))?.phase === "waiting-slot",
      { timeoutMs: 60_000, what: "prepare to wait for the slot" },
    );
    // While it waits, the target kernel goes away; then the slot frees up.
    const image = `${rig.dir}/boot/vmlinuz-${TARGET_RELEASE}`;
    await Deno.rename(image, `${image}.gone`);
    await client.txn([], [{ deleteRange: { key: other } }], []);
    await assert.rejects(waiting, RefusedError);
  } finally {
    client.close();
  }
  const record = await newest(rig);
  assert.equal(record.status, "refused");
  assert.equal(record.steps.length, 0);
  assert.equal(fleetOf(record).state, "abandoned");
  assert.deepEqual(kinds(record), ["window-open", "slot-acquired", "slot-abandoned"]);
  assert.ok(fleetOf(record).decisions.some((d) => d.kind === "slot-busy"));
  assert.deepEqual(await etcdSlots(etcd), { holders: [], halts: [] });
  assert.deepEqual(await rig.kexecLog(), []);
  assert.deepEqual(await rig.unitStates(["vmm.service"]), { "vmm.service": "active" });
});

Deno.test("fleet flow: a slot lost while lease-bound rolls the update back and halts the rollout", async () => {
  await using etcd = await startEtcd();
  await using rig = await startUpdateRig({ config: fleetToml(etcd, "host-d") });
  await rig.start("vmm.service");
  const context = await rig.context({
    onJournal: async (step, status) => {
      if (step !== "phase-prepare" || status !== "done") return;
      // An operator frees the slot of the updating host (--force).
      const operator = createTestHost();
      const code = await runCli(
        ["fleet", "release", "host-d", "--force", `--config-root=${rig.configRoot}`],
        operator,
      );
      assert.equal(code, 0, operator.stderr.text());
    },
  });
  try {
    await assert.rejects(runPrepare(context.update), RolledBackError);
  } finally {
    await context.close();
  }
  const record = await newest(rig);
  assert.equal(record.status, "rolled-back");
  assert.deepEqual(
    record.steps.map((s) => [s.name, s.status]),
    [
      ["fleet-slot", "undone"],
      ["request-devices", "undone"],
      ["load-kernel", "undone"],
      ["phase-prepare", "undone"],
      ["fleet-persist", "undone"],
    ],
  );
  // The slot could not be made permanent: the update stopped before 1 > prepare.
  assert.match(
    record.steps.at(-1)!.error!,
    /no longer this host's: its lease expired or an operator/,
  );
  assert.equal(fleetOf(record).state, "lost");
  assert.deepEqual(kinds(record), ["window-open", "slot-acquired", "slot-lost", "slot-kept"]);
  assert.equal((await rig.sim.status()).state, "normal");
  // No slot, but the failure halts the rollout.
  assert.deepEqual(await etcdSlots(etcd), { holders: [], halts: ["default/host-d"] });
});

Deno.test("fleet flow: recover after an agent died before the slot was permanent frees its slot", async () => {
  await using etcd = await startEtcd();
  // A long lease: the dead agent's slot is still there when recover runs.
  await using rig = await startUpdateRig({
    config: etcdToml({
      endpoints: etcd.endpoints,
      host: "host-e",
      slots: 1,
      leaseTtl: "2min",
      healthUnits: ["vmm.service"],
    }),
  });
  await rig.start("vmm.service");
  const killed = await new Deno.Command(Deno.execPath(), {
    args: rig.cliArgs("prepare"),
    env: { LIVEUPDATE_AGENT_CRASH_AT: "phase-prepare:done" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  assert.equal(killed.signal, "SIGKILL");
  assert.deepEqual((await etcdSlots(etcd)).holders, ["host-e:lease:updating"]);
  const context = await rig.context();
  let resolution;
  try {
    resolution = await resolveUpdate(context.update, "recover");
  } finally {
    await context.close();
  }
  assert.equal(resolution.action, "rolled-back", resolution.message);
  const record = await newest(rig);
  assert.equal(fleetOf(record).state, "abandoned");
  assert.deepEqual(kinds(record), [
    "window-open",
    "slot-acquired",
    "slot-resumed",
    "slot-abandoned",
  ]);
  assert.deepEqual(await etcdSlots(etcd), { holders: [], halts: [] });
  assert.deepEqual(await rig.unitStates(["vmm.service"]), { "vmm.service": "active" });
});

Deno.test("fleet flow: an operator's cancel of a prepared update releases the slot once healthy", async () => {
  await using etcd = await startEtcd();
  await using rig = await startUpdateRig({ config: fleetToml(etcd, "host-g") });
  await rig.start("vmm.service");
  const record = await prepare(rig, { stopAtPrepared: true });
  assert.equal(record.status, "prepared");
  assert.deepEqual((await etcdSlots(etcd)).holders, ["host-g:permanent:updating"]);
  const context = await rig.context();
  try {
    assert.equal((await runCancel(context.update)).action, "cancelled");
  } finally {
    await context.close();
  }
  const cancelled = await newest(rig);
  assert.equal(cancelled.status, "cancelled");
  assert.equal(fleetOf(cancelled).state, "released");
  assert.deepEqual(kinds(cancelled).slice(-3), ["slot-resumed", "health-passed", "slot-released"]);
  assert.deepEqual(await etcdSlots(etcd), { holders: [], halts: [] });
});

Deno.test("fleet flow, CLI: outside the window prepare gives up (exit 8, recorded); --now starts, recorded", async () => {
  await using etcd = await startEtcd();
  const today = new Date().getUTCDay();
  const otherDay = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"][(today + 3) % 7];
  await using rig = await startUpdateRig({
    config: etcdToml({
      endpoints: etcd.endpoints,
      host: "host-w",
      slots: 1,
      waitTimeout: "10s",
      healthUnits: ["vmm.service"],
    }) + `[fleet.window]\ndays = ["${otherDay}"]\nstart = "00:00"\nlength = "1h"\n`,
  });
  await rig.start("vmm.service");
  const agent = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: rig.cliArgs(...args),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  const closed = await agent("prepare");
  assert.equal(closed.code, 8, new TextDecoder().decode(closed.stderr));
  const timedOut = await newest(rig);
  assert.equal(timedOut.status, "refused");
  assert.deepEqual(kinds(timedOut), ["window-closed", "wait-timeout"]);
  assert.deepEqual(await rig.kexecLog(), [], "nothing was changed");

  const now = await agent("prepare", "--now", "--now-reason=kernel CVE");
  assert.equal(now.code, 0, new TextDecoder().decode(now.stderr));
  const record = await newest(rig);
  assert.equal(record.status, "kexec-issued");
  assert.equal(fleetOf(record).override, "--now: kernel CVE");
  assert.deepEqual(kinds(record), ["window-override", "slot-acquired", "slot-persisted"]);
  assert.ok(record.overrides.includes(
    "fleet.window: the maintenance window was not waited for (--now: kernel CVE).",
  ));
  assert.match(new TextDecoder().decode(now.stderr), /window-override|Starting without waiting/);
});

Deno.test("fleet flow: a host that stays unhealthy after finish keeps its slot; the attempt fails", async () => {
  await using etcd = await startEtcd();
  await using rig = await startUpdateRig({
    config: etcdToml({
      endpoints: etcd.endpoints,
      host: "host-u",
      slots: 1,
      // restore.service is active after phase "updated"; needs-broken.service never is.
      healthUnits: ["restore.service", "needs-broken.service"],
      healthTimeout: "1s",
    }),
  });
  await rig.start("vmm.service");
  assert.equal((await prepare(rig)).status, "kexec-issued");
  await reclaimAll(rig);
  const { resolution } = await finish(rig);
  assert.equal(resolution.action, "finished-with-errors");
  assert.equal(resolution.exitCode, 1);
  assert.match(resolution.message, /fleet: the host did not pass the fleet health gate/);
  const record = await newest(rig);
  assert.equal(record.status, "failed");
  assert.equal((await rig.sim.status()).state, "normal", "the kernel's update is finished");
  assert.equal(fleetOf(record).state, "kept");
  const decisions = kinds(record);
  assert.deepEqual(decisions.slice(0, 4), [
    "window-open",
    "slot-acquired",
    "slot-persisted",
    "slot-resumed",
  ]);
  assert.deepEqual(decisions.slice(-2), ["health-failed", "slot-kept"]);
  const failed = fleetOf(record).decisions.find((d) => d.kind === "health-failed")!;
  assert.match(String(failed.fields.failing), /needs-broken\.service is (inactive|failed)/);
  assert.doesNotMatch(String(failed.fields.failing), /restore\.service/);
  assert.deepEqual(await etcdSlots(etcd), {
    holders: ["host-u:permanent:failed"],
    halts: ["default/host-u"],
  });
});

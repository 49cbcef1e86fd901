/**
 * Rollouts of REAL agents against a real etcd: every host is a rehearsal host
 * of its own (simulated LUO kernel, private systemd manager, configuration
 * root; tests/fleet/agent_hosts.ts) and the agent is `liveupdate-agent prepare`
 * then, after the simulated kexec, `liveupdate-agent finish`, as subprocesses.
 * Checked from the hosts' attempt records (fleet timings and decisions) and
 * from etcd's own history of the slot keys.
 */

import assert from "node:assert/strict";
import { runCli } from "../../agent/cli/mod.ts";
import { createTestHost } from "../../agent/host/mod.ts";
import type { AttemptRecord } from "../../agent/store/mod.ts";
import {
  type AgentHost,
  AgentHosts,
  type AgentRun,
  fleetNotes,
  slotIntervals,
} from "./agent_hosts.ts";
import { startEtcd } from "./etcd_harness.ts";
import { etcdToml } from "./helpers.ts";
import { maxHoldersInHistory, maxOverlap } from "./rollout_driver.ts";
import { delay, waitFor } from "./wait.ts";

const PREFIX = "/liveupdate/fleet/";

function ok(run: AgentRun | undefined, what: string): void {
  assert.ok(run, `${what}: did not run`);
  assert.equal(run.code, 0, `${what} (${run.args.join(" ")}) exit ${run.code}:\n${run.stderr}`);
}

function decisionKinds(record: AttemptRecord): string[] {
  return fleetNotes(record)!.decisions.map((d) => d.kind).filter((kind) =>
    kind !== "slot-busy" && kind !== "fleet-halted" && kind !== "health-waiting"
  );
}

/** When a decision of `kind` was made in any of `records`. */
function decisionTimes(records: readonly AttemptRecord[], kind: string): number[] {
  return records.flatMap((record) =>
    fleetNotes(record)?.decisions.filter((d) => d.kind === kind).map((d) => Date.parse(d.time)) ??
      []
  );
}

/** Frees the slot of `id` as an operator would (`liveupdate-agent fleet release`). */
async function operatorRelease(host: AgentHost, id: string): Promise<string> {
  const operator = createTestHost();
  const code = await runCli(
    ["fleet", "release", id, `--config-root=${host.rig.configRoot}`],
    operator,
  );
  assert.equal(code, 0, operator.stderr.text());
  return operator.stdout.text();
}

Deno.test("rollout of 20 real agents with 2 slots: a failing host halts it, fleet release resumes it, all 20 end updated", async () => {
  const started = performance.now();
  await using etcd = await startEtcd();
  await using fleet = await AgentHosts.start({
    count: 20,
    config: (id) =>
      etcdToml({
        endpoints: etcd.endpoints,
        host: id,
        slots: 2,
        retry: "300ms",
        waitTimeout: "10min",
        // Generous: the machine is shared; a lease lost to a slow renewal would roll back.
        leaseTtl: "20s",
        requestTimeout: "5s",
        healthUnits: ["vmm.service"],
        healthTimeout: "1min",
      }),
  });
  const setUp = performance.now();
  const failing = fleet.host(0);
  // host-00's prepare phase starts a unit that fails.
  await failing.rig.dropIn(
    "60-broken",
    '[phases.prepare]\nstart = ["checkpoint.service", "broken.service"]\n',
  );
  const failed = fleet.update(failing);
  await waitFor(async () => (await fleet.fleetState(failing))?.phase === "holding", {
    timeoutMs: 120_000,
    what: "host-00 to take a slot",
  });
  // The rest of the fleet starts while host-00 is in its update.
  const others = fleet.hosts.slice(1);
  const done = new Set<number>();
  const updates = others.map((host) =>
    fleet.update(host).then((runs) => {
      done.add(host.index);
      return runs;
    })
  );
  const failure = await failed;
  assert.equal(failure.prepare.code, 6, `host-00 rolls back:\n${failure.prepare.stderr}`);
  const [attempt] = await fleet.records(failing);
  assert.equal(attempt?.status, "rolled-back");
  assert.equal(fleetNotes(attempt!)?.state, "kept");
  const keptAt = Date.parse(String(attempt!.timings.slot_kept));

  // Hosts in flight finish; every other one waits on the halt.
  await waitFor(async () => {
    for (const host of others) {
      if (done.has(host.index)) continue;
      const state = await fleet.fleetState(host);
      if (state?.phase !== "waiting-slot" || state.last_decision?.kind !== "fleet-halted") {
        return false;
      }
    }
    return true;
  }, { timeoutMs: 300_000, what: "every waiting host to see the halt", intervalMs: 200 });
  const waiting = others.filter((host) => !done.has(host.index)).length;
  assert.ok(waiting > 0, "some hosts wait");
  await delay(2000);
  assert.equal(others.filter((host) => !done.has(host.index)).length, waiting, "nobody started");
  const halted = await fleet.fleetState(others.find((host) => !done.has(host.index))!);
  assert.deepEqual(halted?.blocked_by, ["host-00"]);

  // The operator looks, then frees the slot host-00 kept: the rollout goes on.
  const releasedAt = Date.now();
  assert.match(
    await operatorRelease(failing, "host-00"),
    /^Freed the slot of host-00 .*Step "phase-prepare" failed/,
  );
  const runs = await Promise.all(updates);
  for (const [i, run] of runs.entries()) {
    ok(run.prepare, `${others[i]!.id} prepare`);
    ok(run.finish, `${others[i]!.id} finish`);
  }
  // host-00, fixed, updates too.
  await failing.rig.dropIn("60-broken", undefined);
  const retry = await fleet.update(failing);
  ok(retry.prepare, "host-00 prepare (fixed)");
  ok(retry.finish, "host-00 finish (fixed)");
  const rolledThrough = performance.now();

  // All 20 end updated, their slots released after a healthy finish.
  const all = await Promise.all(fleet.hosts.map((host) => fleet.records(host)));
  for (const [index, records] of all.entries()) {
    const last = records.at(-1)!;
    assert.equal(last.status, "succeeded", `host ${index}: ${last.outcome?.message}`);
    assert.equal((await fleet.host(index).rig.sim.status()).state, "normal");
    assert.equal(fleetNotes(last)?.state, "released");
    assert.deepEqual(decisionKinds(last), [
      "window-open",
      "slot-acquired",
      "slot-persisted",
      "slot-resumed",
      "health-passed",
      "slot-released",
    ]);
    assert.deepEqual(
      last.steps.slice(0, 7).map((step) => step.name),
      [
        "fleet-slot",
        "request-devices",
        "load-kernel",
        "phase-prepare",
        "fleet-persist",
        "prepare-kernel",
        "phase-reboot",
      ],
    );
    assert.ok(Date.parse(String(last.timings.slot_acquired)) <= Date.parse(last.steps[0]!.started));
  }
  // Nobody took a slot between host-00's failure and the operator's release.
  const acquired = decisionTimes(all.flat(), "slot-acquired");
  assert.equal(acquired.filter((t) => t > keptAt && t < releasedAt).length, 0);
  // Never more than 2 hosts between taking a slot and passing the health gate
  // (from the records), never more than 2 holders (from etcd's history).
  const intervals = await slotIntervals(
    fleet,
    (host, record) => host === failing && record.id === attempt!.id ? releasedAt : undefined,
  );
  assert.equal(intervals.length, 21);
  assert.equal(maxOverlap(intervals), 2);
  const history = await maxHoldersInHistory(etcd.endpoints, PREFIX);
  assert.equal(history.max.get("default"), 2);
  assert.equal(history.final, 0, "no slot left behind");
  // deno-lint-ignore no-console -- the rollout's durations, for the record (never asserted)
  console.log(
    `rollout of 20 real agents: set-up ${((setUp - started) / 1000).toFixed(1)} s, ` +
      `rollout ${((rolledThrough - setUp) / 1000).toFixed(1)} s, ` +
      `${history.revisions} etcd revisions`,
  );
});

Deno.test("rollout, killed agents: before the slot is permanent it frees itself; after, it is kept until fleet release", async () => {
  await using etcd = await startEtcd();
  await using fleet = await AgentHosts.start({
    count: 3,
    config: (id) =>
      etcdToml({
        endpoints: etcd.endpoints,
        host: id,
        slots: 1,
        retry: "200ms",
        waitTimeout: "10min",
        leaseTtl: "4s",
        healthUnits: ["vmm.service"],
        healthTimeout: "1min",
      }),
  });
  const [a, b, c] = fleet.hosts as [AgentHost, AgentHost, AgentHost];

  // host-00 is SIGKILLed after its phase "prepare", while its slot is lease-bound.
  const killedA = fleet.run(a, ["prepare"], { LIVEUPDATE_AGENT_CRASH_AT: "phase-prepare:done" });
  await waitFor(async () => (await fleet.fleetState(a))?.phase === "holding", {
    timeoutMs: 120_000,
    what: "host-00 to take the slot",
  });
  const updateB = fleet.update(b);
  assert.equal((await killedA).signal, "SIGKILL");
  // Nobody recovers host-00: its lease runs out and host-01 gets the slot.
  const runB = await updateB;
  ok(runB.prepare, "host-01 prepare");
  ok(runB.finish, "host-01 finish");
  const [crashedA] = await fleet.records(a);
  assert.equal(crashedA?.status, "preparing", "host-00's attempt is still open");
  const [recordB] = await fleet.records(b);
  assert.ok(fleetNotes(recordB!)!.decisions.some((d) => d.kind === "slot-busy"));
  // host-00 recovers: rolled back; its slot is gone already.
  const recoverA = await fleet.run(a, ["recover"]);
  assert.equal(recoverA.code, 6, recoverA.stderr);
  const [recoveredA] = await fleet.records(a);
  assert.equal(recoveredA?.status, "rolled-back");
  assert.equal(fleetNotes(recoveredA!)?.state, "missing");
  assert.deepEqual(await a.rig.unitStates(["vmm.service"]), { "vmm.service": "active" });

  // host-02 is SIGKILLed right after making its slot permanent.
  const killedC = await fleet.run(c, ["prepare"], {
    LIVEUPDATE_AGENT_CRASH_AT: "fleet-persist:done",
  });
  assert.equal(killedC.signal, "SIGKILL");
  const updateA = fleet.update(a);
  // Two lease lifetimes later the slot is still host-02's: host-00 waits.
  await delay(8000);
  const waitingA = await fleet.fleetState(a);
  assert.equal(waitingA?.phase, "waiting-slot");
  assert.deepEqual(waitingA?.blocked_by, ["host-02"]);
  // host-02 recovers: rolled back, and the slot is kept (failed): the rollout halts.
  const recoverC = await fleet.run(c, ["recover"]);
  assert.equal(recoverC.code, 6, recoverC.stderr);
  const [recoveredC] = await fleet.records(c);
  assert.equal(recoveredC?.status, "rolled-back");
  assert.equal(fleetNotes(recoveredC!)?.state, "kept");
  await waitFor(
    async () => (await fleet.fleetState(a))?.last_decision?.kind === "fleet-halted",
    { timeoutMs: 60_000, what: "host-00 to see the halt" },
  );
  const releasedAt = Date.now();
  assert.match(await operatorRelease(a, "host-02"), /^Freed the slot of host-02/);
  const runA = await updateA;
  ok(runA.prepare, "host-00 prepare");
  ok(runA.finish, "host-00 finish");
  const runC = await fleet.update(c);
  ok(runC.prepare, "host-02 prepare");
  ok(runC.finish, "host-02 finish");

  for (const host of fleet.hosts) {
    const records = await fleet.records(host);
    assert.equal(records.at(-1)?.status, "succeeded", host.id);
  }
  // One slot: never two holders; and none between host-02's kept slot and its release.
  const history = await maxHoldersInHistory(etcd.endpoints, PREFIX);
  assert.equal(history.max.get("default"), 1);
  assert.equal(history.final, 0);
  const intervals = await slotIntervals(
    fleet,
    (host, record) => host === c && record.id === recoveredC!.id ? releasedAt : undefined,
  );
  assert.equal(maxOverlap(intervals), 1);
});

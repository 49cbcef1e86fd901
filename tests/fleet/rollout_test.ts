/**
 * Rollouts of many agent processes against a real etcd, with the STAND-IN update
 * step of fleet_agent.ts (the update flow does not exist yet; the lead plugs the
 * real agent into the driver later). What is real: etcd, the fleet layer in every
 * agent process, the configuration, leases, SIGKILL, `fleet release`.
 */

import assert from "node:assert/strict";
import { runCli } from "../../agent/cli/mod.ts";
import type { FleetDecision } from "../../agent/fleet/mod.ts";
import { createTestHost } from "../../agent/host/mod.ts";
import { startEtcd } from "./etcd_harness.ts";
import { etcdToml } from "./helpers.ts";
import { maxHoldersInHistory, maxOverlapByGroup, Rollout, standInAgent } from "./rollout_driver.ts";
import { delay, waitFor } from "./wait.ts";

const PREFIX = "/liveupdate/fleet/";

function decisionsOf(events: { event: string; decision?: unknown }[]): FleetDecision[] {
  return events.filter((e) => e.event === "decision").map((e) => e.decision as FleetDecision);
}

Deno.test("rollout: 20 agents, 2 slots, stand-in update step: never more than 2 updating, all done", async () => {
  await using etcd = await startEtcd();
  await using rollout = await Rollout.create({
    agents: 20,
    name: "rollout-20",
    config: (agent) =>
      etcdToml({
        endpoints: etcd.endpoints,
        host: agent.id,
        slots: 2,
        retry: "150ms",
        waitTimeout: "10min",
        leaseTtl: "5s",
      }),
    spawn: (agent) => standInAgent(agent),
  });
  rollout.start();
  const exits = await rollout.finish(600_000);
  for (const [index, exit] of exits) assert.equal(exit.code, 0, `agent ${index}: ${exit.stderr}`);
  // From the agents' own timestamps: at most 2 between update start and healthy finish.
  const intervals = await rollout.intervals();
  assert.equal(intervals.length, 20);
  assert.ok(intervals.every((i) => i.how === "update-end"));
  assert.equal(maxOverlapByGroup(intervals).get("default"), 2);
  // From etcd's history of the slot keys: never more than 2 holders, none left.
  const history = await maxHoldersInHistory(etcd.endpoints, PREFIX);
  assert.equal(history.max.get("default"), 2);
  assert.equal(history.final, 0, "no slot left behind");
  // Every agent's record holds its fleet decisions, in order.
  for (const events of await rollout.allEvents()) {
    const kinds = decisionsOf(events).map((d) => d.kind);
    assert.deepEqual(kinds.filter((k) => k !== "slot-busy"), [
      "window-open",
      "slot-acquired",
      "slot-persisted",
      "slot-resumed",
      "health-passed",
      "slot-released",
    ]);
  }
});

Deno.test("rollout: a host that fails keeps its slot and halts the rollout; fleet release resumes it", async () => {
  await using etcd = await startEtcd();
  const failing = 4;
  await using rollout = await Rollout.create({
    agents: 12,
    name: "rollout-halt",
    config: (agent) =>
      etcdToml({
        endpoints: etcd.endpoints,
        host: agent.id,
        slots: 2,
        retry: "150ms",
        waitTimeout: "10min",
        leaseTtl: "5s",
      }),
    spawn: (agent) =>
      standInAgent(agent, agent.index === failing ? ["--fail", `--pre-until=${agent.dir}/go`] : []),
  });
  // host-04 takes a slot first; while it is in its update, others roll through the
  // second slot; then its update fails.
  rollout.start([failing]);
  await rollout.waitForEvent(failing, "update-start");
  rollout.start(rollout.agents.map((a) => a.index).filter((i) => i !== failing));
  await waitFor(async () => {
    const events = await rollout.allEvents();
    return events.filter((list) => list.some((e) => e.event === "released")).length >= 3;
  }, { timeoutMs: 300_000, what: "three agents to finish" });
  await Deno.writeTextFile(`${rollout.agents[failing]!.dir}/go`, "");
  const kept = await rollout.waitForEvent(failing, "kept", 300_000);
  const keptRevision = kept.revision as number;
  assert.equal(typeof keptRevision, "number");
  // Agents in flight finish; the others block on the halt and keep asking.
  const blocked = () =>
    rollout.agents.filter((a) => rollout.running(a.index) && a.index !== failing);
  await waitFor(async () => {
    for (const agent of blocked()) {
      const halted = decisionsOf(await rollout.events(agent.index))
        .filter((d) => d.kind === "fleet-halted");
      if (halted.length === 0) return false;
    }
    return true;
  }, { timeoutMs: 120_000, what: "every waiting agent to see the halt" });
  const waiting = blocked().length;
  assert.ok(waiting > 0, "some agents are still waiting");
  await delay(1500);
  assert.equal(blocked().length, waiting, "nobody starts while the rollout is halted");
  // The operator looks, then frees the kept slot.
  const before = await rollout.allEvents();
  // The failed host stays "in its update" until the operator frees its slot.
  const releasedAt = performance.timeOrigin + performance.now();
  const host = createTestHost();
  const code = await runCli([
    "fleet",
    "release",
    "host-04",
    `--config-root=${rollout.agents[failing]!.dir}`,
  ], host);
  assert.equal(code, 0, host.stderr.text());
  assert.match(host.stdout.text(), /^Freed the slot of host-04 .*stand-in update failed/);
  const exits = await rollout.finish(600_000);
  for (const [index, exit] of exits) {
    assert.equal(exit.code, index === failing ? 1 : 0, `agent ${index}: ${exit.stderr}`);
  }
  // No acquisition between the keep and the operator's release.
  const acquiredBefore = before.flat().filter((e) => e.event === "acquired").map((e) =>
    e.revision as number
  );
  const acquiredAll = (await rollout.allEvents()).flat().filter((e) => e.event === "acquired");
  assert.equal(acquiredAll.length, 12);
  assert.ok(
    acquiredBefore.every((revision) => revision < keptRevision),
    "acquired during the halt",
  );
  const history = await maxHoldersInHistory(etcd.endpoints, PREFIX);
  assert.equal(history.max.get("default"), 2);
  assert.equal(history.final, 0);
  const intervals = await rollout.intervals(releasedAt);
  assert.equal(intervals.filter((i) => i.how === "open").length, 1, "the failed host's update");
  assert.equal(maxOverlapByGroup(intervals).get("default"), 2);
});

Deno.test("rollout: a killed agent's lease-bound slot frees itself; a permanent one waits for fleet release", async () => {
  await using etcd = await startEtcd();
  await using rollout = await Rollout.create({
    agents: 4,
    name: "rollout-kill",
    config: (agent) =>
      etcdToml({
        endpoints: etcd.endpoints,
        host: agent.id,
        slots: 1,
        retry: "150ms",
        waitTimeout: "10min",
        leaseTtl: "3s",
      }),
    spawn: (agent) =>
      standInAgent(
        agent,
        [
          ["--mode=hold", "--hold-stage=acquired"],
          [],
          ["--mode=hold", "--hold-stage=kernel-prepare"],
          [],
        ][agent.index]!,
      ),
  });
  // host-00 takes the slot (lease-bound) and is SIGKILLed mid-update.
  rollout.start([0]);
  const holding = await rollout.waitForEvent(0, "holding");
  assert.equal(holding.lease_bound, true);
  rollout.start([1]);
  await waitFor(
    async () => decisionsOf(await rollout.events(1)).some((d) => d.kind === "slot-busy"),
    {
      timeoutMs: 60_000,
      what: "host-01 to find the slot taken",
    },
  );
  const killed = await rollout.kill(0);
  assert.equal(killed.signal, "SIGKILL");
  // Its lease expires; host-01 gets the slot and finishes.
  await rollout.waitForEvent(1, "released", 120_000);
  const first = await rollout.allEvents();
  assert.ok(
    (first[1]!.find((e) => e.event === "acquired")!.revision as number) >
      (first[0]!.find((e) => e.event === "acquired")!.revision as number),
  );

  // host-02 makes its slot permanent (the kernel is prepared), then is SIGKILLed.
  rollout.start([2]);
  const permanent = await rollout.waitForEvent(2, "holding");
  assert.equal(permanent.lease_bound, false);
  await rollout.kill(2);
  rollout.start([3]);
  // Two lease lifetimes later the slot is still held: the rollout waits for an operator.
  await delay(7000);
  const held = await waitForHolders(etcd.endpoints);
  assert.deepEqual(held, ["host-02:permanent"]);
  assert.ok(rollout.running(3), "host-03 still waits");
  assert.ok(!(await rollout.events(3)).some((e) => e.event === "acquired"));
  const host = createTestHost();
  assert.equal(
    await runCli(["fleet", "release", "host-02", `--config-root=${rollout.agents[3]!.dir}`], host),
    0,
  );
  await rollout.waitForEvent(3, "released", 120_000);
  const exits = await rollout.finish(60_000);
  assert.equal(exits.get(3)?.code, 0);
  const history = await maxHoldersInHistory(etcd.endpoints, PREFIX);
  assert.equal(history.max.get("default"), 1);
  assert.equal(history.final, 0);
});

async function waitForHolders(endpoints: readonly string[]): Promise<string[]> {
  const { EtcdClient } = await import("../../agent/fleet/mod.ts");
  const client = new EtcdClient({
    endpoints,
    requestTimeoutMs: 5000,
    httpClient: Deno.createHttpClient({}),
  });
  try {
    const read = await client.range(`${PREFIX}groups/`, { prefix: true });
    return read.kvs.map((kv) =>
      `${kv.key.split("/").at(-1)}:${kv.lease === "0" ? "permanent" : "lease"}`
    );
  } finally {
    client.close();
  }
}

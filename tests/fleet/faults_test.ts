/**
 * Fault cases on a 3-member etcd cluster (real members, loopback only): a member
 * killed in the middle of a rollout, and a client cut off from every member by
 * TCP proxies the test stops. What must hold: no slot granted twice (etcd's own
 * history of the slot keys), no slot lost (every agent finishes, nothing left
 * held). The update step is the stand-in of fleet_agent.ts.
 */

import assert from "node:assert/strict";
import { startEtcd } from "./etcd_harness.ts";
import { etcdToml } from "./helpers.ts";
import { maxHoldersInHistory, maxOverlapByGroup, Rollout, standInAgent } from "./rollout_driver.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { delay, waitFor } from "./wait.ts";

const PREFIX = "/liveupdate/fleet/";

function rotate<T>(list: readonly T[], by: number): T[] {
  return list.map((_, i) => list[(i + by) % list.length]!);
}

Deno.test("faults: the etcd leader is killed mid-rollout: no slot granted twice, none lost", async () => {
  await using etcd = await startEtcd({ members: 3 });
  await using rollout = await Rollout.create({
    agents: 12,
    name: "faults-member",
    config: (agent) =>
      etcdToml({
        // Each agent starts with a different member, so some talk to the leader.
        endpoints: rotate(etcd.endpoints, agent.index),
        host: agent.id,
        slots: 2,
        retry: "150ms",
        waitTimeout: "10min",
        leaseTtl: "6s",
        requestTimeout: "2s",
      }),
    spawn: (agent) => standInAgent(agent, ["--pre-ms=100", "--blackout-ms=150"]),
  });
  rollout.start();
  await waitFor(async () => {
    const events = await rollout.allEvents();
    return events.filter((list) => list.some((e) => e.event === "released")).length >= 3;
  }, { timeoutMs: 300_000, what: "three agents to finish" });
  const leader = await etcd.leader();
  await etcd.kill(leader);
  const exits = await rollout.finish(600_000);
  for (const [index, exit] of exits) assert.equal(exit.code, 0, `agent ${index}: ${exit.stderr}`);
  const survivors = etcd.endpoints.filter((_, i) => i !== leader);
  const history = await maxHoldersInHistory(survivors, PREFIX);
  const most = history.max.get("default") ?? 0;
  assert.ok(most >= 1 && most <= 2, `never more holders than slots (saw ${most})`);
  assert.equal(history.final, 0, "no slot left held");
  const intervals = await rollout.intervals();
  assert.equal(intervals.filter((i) => i.how === "update-end").length, 12);
  assert.ok(maxOverlapByGroup(intervals).get("default")! <= 2);
  // Agents that started on the dead member failed over to the others.
  const failedOver = (await rollout.allEvents()).some((events) =>
    events.some((e) =>
      e.event === "decision" &&
      (e.decision as { kind: string }).kind === "backend-error"
    )
  );
  const logs = await Promise.all(
    rollout.agents.map((a) => Deno.readTextFile(`${a.recordFile}.log`).catch(() => "")),
  );
  assert.ok(
    failedOver || logs.some((log) => log.includes("etcd: now using")),
    "some agent noticed the dead member",
  );
});

Deno.test("faults: a client partitioned from etcd loses its lease-bound slot before anyone else gets it", async () => {
  await using etcd = await startEtcd({ members: 3 });
  const proxies = etcd.members.map((member) => {
    const url = new URL(member.clientUrl);
    return TcpProxy.start({ hostname: url.hostname, port: Number(url.port) });
  });
  try {
    await using rollout = await Rollout.create({
      agents: 5,
      name: "faults-partition",
      config: (agent) =>
        etcdToml({
          endpoints: agent.index === 0
            ? proxies.map((p) => p.url())
            : rotate(etcd.endpoints, agent.index),
          host: agent.id,
          slots: 1,
          retry: "150ms",
          waitTimeout: "10min",
          leaseTtl: "3s",
          requestTimeout: "1s",
        }),
      // host-00 stays in the undo-able part of its first update until it loses
      // the slot, then tries again (and completes after the partition heals).
      spawn: (agent) =>
        standInAgent(
          agent,
          agent.index === 0 ? ["--first-pre-ms=600000", "--retry-after-loss"] : [],
        ),
    });
    rollout.start([0]);
    const started = await rollout.waitForEvent(0, "update-start");
    rollout.start([1, 2, 3, 4]);
    await delay(300);
    for (const proxy of proxies) await proxy.stop();
    const lost = await rollout.waitForEvent(0, "lost", 60_000);
    // Others get the slot only after the partitioned host knew it had lost it.
    await waitFor(async () => {
      const events = await rollout.allEvents();
      return events.slice(1).filter((list) => list.some((e) => e.event === "released")).length >= 2;
    }, { timeoutMs: 300_000, what: "two other agents to finish" });
    for (const proxy of proxies) proxy.start();
    const exits = await rollout.finish(600_000);
    for (const [index, exit] of exits) assert.equal(exit.code, 0, `agent ${index}: ${exit.stderr}`);
    const all = await rollout.allEvents();
    const othersAcquired = all.slice(1).flatMap((events) =>
      events.filter((e) => e.event === "acquired").map((e) => e.t)
    );
    assert.ok(
      othersAcquired.every((t) => t > lost.t),
      "an other host started before the loss was known",
    );
    assert.ok(lost.t > started.t);
    // host-00 finished on its second round, after the partition healed.
    assert.equal(all[0]!.filter((e) => e.event === "released").length, 1);
    assert.equal(all[0]!.find((e) => e.event === "released")!.round, 1);
    const history = await maxHoldersInHistory(etcd.endpoints, PREFIX);
    assert.equal(history.max.get("default"), 1, "never two holders of one slot");
    assert.equal(history.final, 0);
    const intervals = await rollout.intervals();
    assert.deepEqual(intervals.filter((i) => i.agent === 0).map((i) => i.how), [
      "lost",
      "update-end",
    ]);
    assert.equal(maxOverlapByGroup(intervals).get("default"), 1);
  } finally {
    for (const proxy of proxies) await proxy.stop();
  }
});

Deno.test("faults: a client partitioned after its slot became permanent keeps it; nobody else starts", async () => {
  await using etcd = await startEtcd({ members: 3 });
  const proxies = etcd.members.map((member) => {
    const url = new URL(member.clientUrl);
    return TcpProxy.start({ hostname: url.hostname, port: Number(url.port) });
  });
  try {
    await using rollout = await Rollout.create({
      agents: 3,
      name: "faults-permanent",
      config: (agent) =>
        etcdToml({
          endpoints: agent.index === 0
            ? proxies.map((p) => p.url())
            : rotate(etcd.endpoints, agent.index),
          host: agent.id,
          slots: 1,
          retry: "150ms",
          waitTimeout: "10min",
          leaseTtl: "3s",
          requestTimeout: "1s",
        }),
      // host-00's "kexec blackout" lasts until the test has healed the partition.
      spawn: (agent) =>
        standInAgent(agent, agent.index === 0 ? ["--blackout-ms=9000", "--jitter-ms=0"] : []),
    });
    rollout.start([0]);
    await rollout.waitForEvent(0, "persisted");
    rollout.start([1, 2]);
    for (const proxy of proxies) await proxy.stop();
    // Two lease lifetimes: a lease-bound slot would have gone; this one stays.
    await delay(6500);
    const during = await rollout.allEvents();
    assert.ok(during.slice(1).every((events) => !events.some((e) => e.event === "acquired")));
    for (const proxy of proxies) proxy.start();
    const exits = await rollout.finish(600_000);
    for (const [index, exit] of exits) assert.equal(exit.code, 0, `agent ${index}: ${exit.stderr}`);
    const history = await maxHoldersInHistory(etcd.endpoints, PREFIX);
    assert.equal(history.max.get("default"), 1);
    assert.equal(history.final, 0);
    assert.equal(maxOverlapByGroup(await rollout.intervals()).get("default"), 1);
  } finally {
    for (const proxy of proxies) await proxy.stop();
  }
});

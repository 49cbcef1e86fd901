// deno-lint-ignore-file no-console -- a benchmark script that prints its numbers, not part of the agent
/**
 * Numbers of the fleet layer against a real etcd on loopback (never asserted in
 * tests): the latency of one slot cycle (acquire, permanent, release), how many
 * cycles a second 50 contending clients in one process get through 5 slots, and
 * the cost of a maintenance-window check.
 *
 * Usage: deno run -A tests/bench/fleet_bench.ts [--cycles=200] [--clients=50]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { windowFromConfig, windowStatus } from "../../agent/fleet/mod.ts";
import { startEtcd } from "../fleet/etcd_harness.ts";
import { etcdToml, testFleet } from "../fleet/helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cycles: { type: "string", default: "200" },
    clients: { type: "string", default: "50" },
  },
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function summary(ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `p50 ${percentile(sorted, 0.5).toFixed(2)} ms, p95 ${
    percentile(sorted, 0.95).toFixed(2)
  } ms, ` +
    `p99 ${percentile(sorted, 0.99).toFixed(2)} ms, max ${sorted.at(-1)!.toFixed(2)} ms`;
}

await using etcd = await startEtcd();
console.log(`etcd ${etcd.endpoints[0]} (one member, loopback)`);

{
  await using one = await testFleet(
    etcdToml({ endpoints: etcd.endpoints, host: "bench-1" }),
    "bench",
  );
  const acquire: number[] = [];
  const persist: number[] = [];
  const release: number[] = [];
  for (let i = 0; i < Number(values.cycles); i++) {
    let t = performance.now();
    const slot = await one.fleet.acquire();
    acquire.push(performance.now() - t);
    t = performance.now();
    await slot.persist("kernel-prepare");
    persist.push(performance.now() - t);
    t = performance.now();
    await slot.release(undefined);
    release.push(performance.now() - t);
  }
  console.log(`acquire (snapshot txn, lease grant, CAS txn): ${summary(acquire)}`);
  console.log(`persist (CAS txn, lease revoke):             ${summary(persist)}`);
  console.log(`release (CAS txn):                           ${summary(release)}`);
}

{
  const clients = Number(values.clients);
  const fleets = await Promise.all(
    Array.from({ length: clients }, (_, i) =>
      testFleet(
        etcdToml({
          endpoints: etcd.endpoints,
          host: `bench-${i}`,
          slots: 5,
          retry: "100ms",
          waitTimeout: "10min",
          prefix: "/bench/",
        }),
        "bench",
      )),
  );
  const head = async () => {
    const r = await fetch(`${etcd.endpoints[0]}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("x") }),
    });
    return Number((await r.json()).header.revision);
  };
  const before = await head();
  const start = performance.now();
  await Promise.all(fleets.map(async ({ fleet }) => {
    const slot = await fleet.acquire();
    await slot.persist("kernel-prepare");
    await slot.release(undefined);
  }));
  const seconds = (performance.now() - start) / 1000;
  const writes = (await head()) - before;
  console.log(
    `${clients} clients through 5 slots (retry 100ms ± 25%, no update work): ${
      seconds.toFixed(2)
    } s, ` +
      `${(clients / seconds).toFixed(1)} cycles/s, ${writes} etcd revisions (${
        (writes / clients).toFixed(1)
      } per cycle)`,
  );
  for (const fleet of fleets) await fleet[Symbol.asyncDispose]();
}

{
  const window = windowFromConfig({
    days: ["sat", "sun"],
    start: "01:00",
    length: 5 * 3_600_000,
    time_zone: "Europe/Berlin",
  });
  const n = 2000;
  const start = performance.now();
  for (let i = 0; i < n; i++) windowStatus(window, new Date(Date.UTC(2026, 2, 20) + i * 3_600_000));
  console.log(
    `window check (Europe/Berlin, 2 days): ${
      ((performance.now() - start) * 1000 / n).toFixed(1)
    } µs`,
  );
}

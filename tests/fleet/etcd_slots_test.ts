import assert from "node:assert/strict";
import {
  FleetSlotKeptError,
  FleetSlotLostError,
  FleetTimeoutError,
  healthGate,
  readFleetState,
} from "../../agent/fleet/mod.ts";
import { startEtcd } from "./etcd_harness.ts";
import { etcdToml, logLines, testFleet } from "./helpers.ts";
import { waitFor } from "./wait.ts";

const healthy = healthGate([]);

Deno.test("etcd: slots are counted per group, taken by CAS and freed after a healthy finish", async () => {
  await using etcd = await startEtcd();
  const endpoints = etcd.endpoints;
  await using a = await testFleet(etcdToml({ endpoints, host: "host-a", slots: 2 }));
  await using b = await testFleet(etcdToml({ endpoints, host: "host-b", slots: 2 }));
  await using c = await testFleet(
    etcdToml({ endpoints, host: "host-c", slots: 2, waitTimeout: "0s" }),
  );
  await using other = await testFleet(
    etcdToml({ endpoints, host: "host-d", group: "rack-2", slots: 1 }),
  );
  const slotA = await a.fleet.acquire();
  const slotB = await b.fleet.acquire();
  assert.equal(slotA.state, "held");
  assert.equal(slotA.record.key, "/liveupdate/fleet/groups/default/holders/host-a");
  // Both slots of "default" are taken: host-c times out at once (wait_timeout 0).
  const error = await c.fleet.acquire().catch((e) => e);
  assert.ok(error instanceof FleetTimeoutError, String(error));
  assert.equal(error.exitCode, 8);
  assert.match(error.message, /All 2 slot\(s\) of group "default" are held \(by host-a, host-b\)/);
  // Another group has its own slots.
  const slotD = await other.fleet.acquire();
  const listing = await a.fleet.backend.list();
  assert.deepEqual(listing?.holders.map((h) => `${h.group}/${h.id}`).sort(), [
    "default/host-a",
    "default/host-b",
    "rack-2/host-d",
  ]);
  assert.ok(listing?.holders.every((h) => h.lease_bound && h.state === "updating"));
  // The kernel is about to be prepared: the slot becomes permanent.
  await slotA.persist("kernel-prepare");
  assert.equal(slotA.state, "persistent");
  const holderA = (await a.fleet.backend.list())?.holders.find((h) => h.id === "host-a");
  assert.equal(holderA?.lease_bound, false);
  assert.equal(holderA?.stage, "kernel-prepare");
  const released = await slotA.release(healthy);
  assert.equal(released.released, true);
  assert.deepEqual(
    slotA.decisions.map((d) => d.kind),
    ["window-open", "slot-acquired", "slot-persisted", "health-passed", "slot-released"],
  );
  // A slot is free again: host-c gets it.
  const slotC = await c.fleet.acquire();
  for (const slot of [slotB, slotC, slotD]) await slot.release(undefined);
  assert.deepEqual((await a.fleet.backend.list())?.holders, []);
  // Every decision was logged with structured fields.
  const acquired = logLines(a.host).find((line) => line.fleet === "slot-acquired");
  assert.equal(acquired?.host_id, "host-a");
  assert.equal(acquired?.group, "default");
  assert.equal(typeof acquired?.revision, "number");
});

Deno.test("etcd: a failed update keeps its slot and halts the rollout until `fleet release`", async () => {
  await using etcd = await startEtcd();
  const endpoints = etcd.endpoints;
  await using a = await testFleet(etcdToml({ endpoints, host: "host-a", slots: 3 }));
  await using b = await testFleet(
    etcdToml({ endpoints, host: "host-b", slots: 3, waitTimeout: "500ms" }),
  );
  await using c = await testFleet(
    etcdToml({ endpoints, host: "host-c", group: "rack-2", slots: 3, waitTimeout: "500ms" }),
  );
  const slot = await a.fleet.acquire();
  await slot.persist("kernel-prepare");
  await slot.keep("rolled back: vmm.service failed to stop");
  assert.equal(slot.state, "kept");
  // halt = "fleet": neither the same group nor another group may start.
  for (const waiting of [b, c]) {
    const error = await waiting.fleet.acquire().catch((e) => e);
    assert.ok(error instanceof FleetTimeoutError, String(error));
    assert.match(error.message, /halted by a failed update: host-a .*vmm\.service failed to stop/);
  }
  // The failed host itself refuses to start another update.
  const again = await a.fleet.acquire().catch((e) => e);
  assert.ok(again instanceof FleetSlotKeptError, String(again));
  assert.equal(again.exitCode, 5);
  assert.match(
    again.message,
    /keeps a slot .*\(state failed, stage kernel-prepare, reason: rolled back: vmm\.service/,
  );
  const listing = await a.fleet.backend.list();
  assert.equal(listing?.halts.length, 1);
  assert.equal(listing?.halts[0]?.id, "host-a");
  // The operator looks, then frees it.
  const freed = await a.fleet.backend.operatorRelease("host-a", "", { force: false });
  assert.equal(freed.released.length, 1);
  assert.equal(freed.halts.length, 1);
  const slotB = await b.fleet.acquire();
  const slotC = await c.fleet.acquire();
  await slotB.release(undefined);
  await slotC.release(undefined);
});

Deno.test("etcd: halt scopes: a group halt spares other groups, a slot halt only costs the slot", async () => {
  await using etcd = await startEtcd();
  const endpoints = etcd.endpoints;
  for (const halt of ["group", "slot"] as const) {
    const prefix = `/liveupdate/${halt}/`;
    await using a = await testFleet(
      etcdToml({ endpoints, host: "host-a", slots: 2, halt, prefix }),
    );
    await using b = await testFleet(
      etcdToml({ endpoints, host: "host-b", slots: 2, halt, prefix, waitTimeout: "300ms" }),
    );
    await using c = await testFleet(
      etcdToml({ endpoints, host: "host-c", group: "rack-2", slots: 2, halt, prefix }),
    );
    const slot = await a.fleet.acquire();
    await slot.keep("failed");
    const sameGroup = await b.fleet.acquire().catch((e) => e);
    if (halt === "group") {
      assert.ok(sameGroup instanceof FleetTimeoutError, `${halt}: ${sameGroup}`);
      assert.match(sameGroup.message, /halted/);
    } else {
      // Only the kept slot is gone: the second slot still serves.
      assert.equal(sameGroup.state, "held", `${halt}: ${sameGroup}`);
      await sameGroup.release(undefined);
    }
    const otherGroup = await c.fleet.acquire();
    await otherGroup.release(undefined);
    await a.fleet.backend.operatorRelease("host-a", "", { force: false });
  }
});

Deno.test("etcd: a lease-bound slot frees itself when its agent stops renewing; a permanent one stays", async () => {
  await using etcd = await startEtcd();
  const endpoints = etcd.endpoints;
  await using a = await testFleet(
    etcdToml({ endpoints, host: "host-a", slots: 2, leaseTtl: "2s" }),
  );
  await using b = await testFleet(
    etcdToml({ endpoints, host: "host-b", slots: 2, leaseTtl: "2s" }),
  );
  const bound = await a.fleet.acquire();
  const permanent = await b.fleet.acquire();
  await permanent.persist("kernel-prepare");
  // Both agents "die": their keepers stop, nothing is released.
  await bound.close();
  await permanent.close();
  await waitFor(async () => {
    const holders = (await a.fleet.backend.list())?.holders ?? [];
    return !holders.some((h) => h.id === "host-a");
  }, { timeoutMs: 30_000, what: "the lease of host-a to expire" });
  const holders = (await a.fleet.backend.list())?.holders ?? [];
  assert.deepEqual(holders.map((h) => h.id), ["host-b"], "the permanent slot outlives its lease");
  // After the "kexec", a new process of host-b resumes the slot and frees it.
  await using b2 = await testFleet(etcdToml({ endpoints, host: "host-b", slots: 2 }));
  const resumed = await b2.fleet.resume();
  assert.ok(resumed);
  assert.equal(resumed.state, "persistent");
  assert.equal((await resumed.release(healthy)).released, true);
  assert.equal(await b2.fleet.resume(), undefined, "nothing left to resume");
});

Deno.test("etcd: a slot freed under a running update is noticed before the point of no return", async () => {
  await using etcd = await startEtcd();
  const endpoints = etcd.endpoints;
  await using a = await testFleet(etcdToml({ endpoints, host: "host-a", slots: 1 }));
  await using b = await testFleet(etcdToml({ endpoints, host: "host-b", slots: 1 }));
  const slot = await a.fleet.acquire();
  // Without --force, an operator cannot free a slot whose agent is alive.
  await assert.rejects(
    a.fleet.backend.operatorRelease("host-a", "", { force: false }),
    /is updating right now .* add --force/,
  );
  await a.fleet.backend.operatorRelease("host-a", "", { force: true });
  const other = await b.fleet.acquire();
  const error = await slot.persist("kernel-prepare").catch((e) => e);
  assert.ok(error instanceof FleetSlotLostError, String(error));
  assert.equal(slot.state, "lost");
  assert.ok(slot.signal.aborted);
  // The update rolls back and fails: with the slot gone, it still halts the rollout.
  await slot.keep("rolled back after losing the slot");
  const listing = await a.fleet.backend.list();
  assert.deepEqual(listing?.halts.map((h) => h.id), ["host-a"]);
  assert.deepEqual(listing?.holders.map((h) => h.id), ["host-b"], "never two holders of 1 slot");
  await other.release(undefined);
});

Deno.test("etcd: an unhealthy host keeps its slot; the state file tells status what happens", async () => {
  await using etcd = await startEtcd();
  await using a = await testFleet(etcdToml({ endpoints: etcd.endpoints, host: "host-a" }));
  const slot = await a.fleet.acquire({ attempt: "attempt-1" });
  let state = await readFleetState(Deno, a.root.runtimeDir);
  assert.equal(state?.phase, "holding");
  assert.equal(state?.slot?.key, "/liveupdate/fleet/groups/default/holders/host-a");
  await slot.persist("kernel-prepare");
  let checks = 0;
  const gate = healthGate([{
    name: "units-active",
    check: () => Promise.resolve({ ok: false, detail: `vmm.service is failed (${++checks})` }),
  }]);
  const outcome = await slot.release(gate);
  assert.equal(outcome.released, false);
  assert.ok(checks >= 2, "the gate was polled");
  assert.equal(slot.state, "kept");
  state = await readFleetState(Deno, a.root.runtimeDir);
  assert.equal(state?.phase, "kept");
  const holder = (await a.fleet.backend.list())?.holders[0];
  assert.equal(holder?.state, "failed");
  assert.match(
    holder?.reason ?? "",
    /unhealthy after finish: units-active: vmm\.service is failed/,
  );
  await a.fleet.backend.operatorRelease("host-a", "", { force: false });
});

Deno.test("etcd: recover after a crash before the point of no return adopts, keeps or frees the slot", async () => {
  await using etcd = await startEtcd();
  const endpoints = etcd.endpoints;
  await using a = await testFleet(
    etcdToml({ endpoints, host: "host-a", slots: 2, leaseTtl: "2s" }),
  );
  // The agent dies in the undo-able part (its lease keeper stops with it).
  const first = await a.fleet.acquire();
  await first.close();
  // It starts again within the lease's lifetime: recover finds the slot, still lease-bound.
  await using again = await testFleet(
    etcdToml({ endpoints, host: "host-a", slots: 2, leaseTtl: "2s" }),
  );
  const adopted = await again.fleet.resume();
  assert.ok(adopted);
  assert.equal(adopted.state, "held");
  assert.equal(adopted.leaseBound, true);
  // recover rolled the host back: nothing was changed for good, so the slot is freed.
  await adopted.abandon("recovered: rolled back after the agent died");
  assert.deepEqual((await a.fleet.backend.list())?.holders, []);
  // Had it decided the update failed, the slot would be kept; if the lease expired
  // meanwhile, the failure still halts the rollout.
  const second = await again.fleet.acquire();
  await second.close();
  const late = await again.fleet.resume();
  assert.ok(late);
  await waitFor(async () => ((await a.fleet.backend.list())?.holders.length ?? 1) === 0, {
    timeoutMs: 30_000,
    what: "the lease to expire",
  });
  await late.keep("recovered: the update failed");
  assert.equal(late.state, "lost");
  const listing = await a.fleet.backend.list();
  assert.deepEqual(listing?.holders, []);
  assert.deepEqual(listing?.halts.map((h) => h.id), ["host-a"]);
  assert.deepEqual(late.decisions.map((d) => d.kind), ["slot-resumed", "slot-lost", "slot-kept"]);
  await a.fleet.backend.operatorRelease("host-a", "", { force: false });
});

/**
 * The update flow with a FleetLock server (the protocol test double), in
 * process, on the rehearsal host of the integration tier: prepare takes the
 * lock before changing anything, finish releases it after the health gate, a
 * failed update keeps it until the operator's `fleet release`.
 */

import assert from "node:assert/strict";
import { runCli } from "../../agent/cli/mod.ts";
import { createTestHost } from "../../agent/host/mod.ts";
import type { AttemptRecord } from "../../agent/store/mod.ts";
import {
  type FleetNotes,
  resolveUpdate,
  RolledBackError,
  runPrepare,
} from "../../agent/update/mod.ts";
import { SMALL, startUpdateRig, type UpdateRig } from "../integration/_update_rig.ts";
import { type FleetLockDouble, startFleetLock } from "./fleetlock_double.ts";

function toml(url: string, host: string): string {
  return [
    "[fleet]",
    'backend = "fleetlock"',
    `host_id = "${host}"`,
    'group = "workers"',
    'retry_interval = "100ms"',
    'wait_timeout = "1min"',
    "[fleet.health]",
    'units = ["vmm.service"]',
    'interval = "100ms"',
    'timeout = "5s"',
    "[fleet.fleetlock]",
    `url = "${url}"`,
    'request_timeout = "2s"',
    "",
  ].join("\n");
}

function fleetOf(record: AttemptRecord): FleetNotes {
  const notes = record.notes.fleet as FleetNotes | undefined;
  assert.ok(notes, "the record has notes.fleet");
  return notes;
}

/** The protocol calls the server saw: "pre-reboot host", "steady-state host". */
function calls(server: FleetLockDouble): string[] {
  return server.requests.map((r) =>
    `${r.path.slice("/v1/".length)} ${JSON.parse(r.body).client_params.id}`
  );
}

/** Whether another host could take a slot now (a protocol call of its own). */
async function otherCanLock(server: FleetLockDouble): Promise<boolean> {
  const response = await fetch(`${server.url}/v1/pre-reboot`, {
    method: "POST",
    headers: { "fleet-lock-protocol": "true", "content-type": "application/json" },
    body: JSON.stringify({ client_params: { id: "host-other", group: "workers" } }),
  });
  await response.body?.cancel();
  if (response.ok) {
    server.holders.get("workers")!.delete("host-other");
  }
  server.requests.pop();
  return response.ok;
}

async function withContext<T>(
  rig: UpdateRig,
  run: (update: Awaited<ReturnType<UpdateRig["context"]>>["update"]) => Promise<T>,
): Promise<T> {
  const context = await rig.context();
  try {
    return await run(context.update);
  } finally {
    await context.close();
  }
}

Deno.test("fleetlock flow: prepare takes the lock, finish releases it after the health gate", async () => {
  await using server = startFleetLock({ defaultSlots: 1 });
  await using rig = await startUpdateRig({ config: toml(server.url, "host-f") });
  await rig.start("vmm.service");
  let lockedBeforeChanges = false;
  const context = await rig.context({
    onJournal: (step, status) => {
      if (step === "request-devices" && status === "started") {
        lockedBeforeChanges = server.holders.get("workers")?.has("host-f") ?? false;
      }
    },
  });
  let record;
  try {
    record = await runPrepare(context.update);
  } finally {
    await context.close();
  }
  assert.ok(lockedBeforeChanges, "locked before the first step that changes the host");
  assert.equal(record.status, "kexec-issued");
  assert.deepEqual(calls(server), ["pre-reboot host-f"]);
  assert.equal(await otherCanLock(server), false, "the only slot is taken");
  const notes = fleetOf(record);
  assert.equal(notes.backend, "fleetlock");
  assert.equal(notes.state, "persistent");
  assert.equal(notes.slot?.url, server.url);
  assert.deepEqual(notes.decisions.map((d) => d.kind), [
    "window-open",
    "slot-acquired",
    "slot-persisted",
  ]);

  for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
  const resolution = await withContext(rig, (update) => resolveUpdate(update, "finish"));
  assert.equal(resolution.action, "finished", resolution.message);
  const done = (await rig.record())!;
  assert.equal(done.status, "succeeded");
  assert.equal(fleetOf(done).state, "released");
  assert.deepEqual(calls(server), ["pre-reboot host-f", "steady-state host-f"]);
  assert.equal(server.holders.get("workers")?.size, 0);
  assert.deepEqual(fleetOf(done).decisions.map((d) => d.kind).slice(3), [
    "slot-resumed",
    "health-passed",
    "slot-released",
  ]);
});

Deno.test("fleetlock flow: a failed update keeps the lock until the operator releases it", async () => {
  await using server = startFleetLock({ defaultSlots: 1 });
  await using rig = await startUpdateRig({ config: toml(server.url, "host-f") });
  await rig.start("vmm.service");
  await rig.dropIn("60-broken", '[phases.prepare]\nstart = ["broken.service"]\n');
  await assert.rejects(withContext(rig, (update) => runPrepare(update)), RolledBackError);
  const record = (await rig.record())!;
  assert.equal(record.status, "rolled-back");
  assert.equal(fleetOf(record).state, "kept");
  assert.deepEqual(fleetOf(record).decisions.map((d) => d.kind), [
    "window-open",
    "slot-acquired",
    "slot-kept",
  ]);
  // No unlock was sent: the lock is kept and nobody else gets the slot.
  assert.deepEqual(calls(server), ["pre-reboot host-f"]);
  assert.deepEqual([...server.holders.get("workers")!], ["host-f"]);
  assert.equal(await otherCanLock(server), false);
  assert.deepEqual(await rig.unitStates(["vmm.service"]), { "vmm.service": "active" });

  const operator = createTestHost();
  assert.equal(
    await runCli(["fleet", "release", "host-f", `--config-root=${rig.configRoot}`], operator),
    0,
    operator.stderr.text(),
  );
  assert.deepEqual(calls(server), ["pre-reboot host-f", "steady-state host-f"]);
  assert.equal(await otherCanLock(server), true, "the rollout goes on");
});

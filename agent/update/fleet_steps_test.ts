import assert from "node:assert/strict";
import type { DeviceFlags, Kernel } from "../kernel/mod.ts";
import type { AttemptRecord } from "../store/mod.ts";
import type { SystemdManager } from "../systemd/mod.ts";
import type { FleetAttempt } from "./fleet_slot.ts";
import { reclaimReader, unitStateReader } from "./fleet_slot.ts";
import { FLEET_STEPS, fleetUndoSteps, prepareSignal, withFleetSteps } from "./fleet_steps.ts";
import type { Step } from "./steps.ts";

const step = (name: string): Step => ({ name, run: () => Promise.resolve(null) });

/** An attempt holding a slot, as far as the steps look at it. */
function holding(persisted: string[]): FleetAttempt {
  const lost = new AbortController();
  const slot = {
    record: { backend: "etcd", id: "h", group: "g", acquired_at: "2026-11-25T20:00:00.000Z" },
    leaseBound: true,
    acquiredAt: "2026-11-25T20:00:00.000Z",
    state: "held",
    signal: lost.signal,
  };
  return {
    slot,
    lost: lost.signal,
    persist: (stage: string) => {
      persisted.push(stage);
      slot.state = "persistent";
      return Promise.resolve();
    },
  } as unknown as FleetAttempt;
}

Deno.test("the fleet steps: the slot first, permanent just before the kernel's prepare", async () => {
  const steps = [
    "request-devices",
    "load-kernel",
    "phase-prepare",
    "prepare-kernel",
    "phase-reboot",
  ]
    .map(step);
  assert.deepEqual(withFleetSteps(steps, undefined).map((s) => s.name), steps.map((s) => s.name));
  const persisted: string[] = [];
  const attempt = holding(persisted);
  const withFleet = withFleetSteps(steps, attempt);
  assert.deepEqual(withFleet.map((s) => s.name), [
    "fleet-slot",
    "request-devices",
    "load-kernel",
    "phase-prepare",
    "fleet-persist",
    "prepare-kernel",
    "phase-reboot",
  ]);
  assert.deepEqual(await withFleet[0]!.run(undefined), {
    slot: attempt.slot!.record,
    lease_bound: true,
    acquired_at: "2026-11-25T20:00:00.000Z",
  });
  assert.deepEqual(await withFleet[4]!.run(undefined), {
    stage: "kernel-prepare",
    state: "persistent",
  });
  assert.deepEqual(persisted, ["kernel-prepare"]);
  // Neither fleet step has an undo: a failed update keeps its slot.
  for (
    const fleetStep of withFleet.filter((s) => (FLEET_STEPS as readonly string[]).includes(s.name))
  ) {
    assert.equal(fleetStep.undo, undefined, fleetStep.name);
  }
  // No global state machine (no prepare-kernel step): permanent last, before the kexec.
  const plain = withFleetSteps([step("load-kernel"), step("phase-reboot")], holding([]));
  assert.deepEqual(plain.map((s) => s.name), [
    "fleet-slot",
    "load-kernel",
    "phase-reboot",
    "fleet-persist",
  ]);
  // Undo knows both by name and frees nothing.
  assert.deepEqual(fleetUndoSteps().map((s) => [s.name, s.undo]), [
    ["fleet-slot", undefined],
    ["fleet-persist", undefined],
  ]);
});

Deno.test("the steps stop on SIGTERM or when the slot is lost", () => {
  const term = new AbortController();
  assert.equal(prepareSignal(term.signal, undefined), term.signal);
  assert.equal(prepareSignal(undefined, undefined), undefined);
  const lost = new AbortController();
  const attempt = { lost: lost.signal } as unknown as FleetAttempt;
  assert.equal(prepareSignal(undefined, attempt), lost.signal);
  const both = prepareSignal(term.signal, attempt)!;
  assert.equal(both.aborted, false);
  lost.abort(new Error("lease expired"));
  assert.equal(both.aborted, true);
  assert.equal((both.reason as Error).message, "lease expired");
});

Deno.test("health readers: systemd's unit states, the kernel's reclaimed flags and the record", async () => {
  const manager = {
    unitStatuses: (names: readonly string[]) =>
      Promise.resolve(names.map((name) => ({
        name,
        loadState: name === "gone.service" ? "not-found" : "loaded",
        activeState: name === "vmm.service" ? "active" : "inactive",
        subState: "",
        jobType: "",
        path: "",
      }))),
  } as unknown as SystemdManager;
  const units = unitStateReader(manager);
  assert.equal(await units.activeState("vmm.service"), "active");
  assert.equal(await units.activeState("other.service"), "inactive");
  assert.equal(await units.activeState("gone.service"), "not-found");

  const flags: Record<string, DeviceFlags> = {
    "a": { requested: false, preserved: true, reclaimed: true },
    "b": { requested: false, preserved: true, reclaimed: false },
    "p": { requested: false, preserved: false, reclaimed: false },
  };
  const kernel = {
    devices: { readDevice: (path: string) => Promise.resolve(flags[path]!) },
  } as unknown as Kernel;
  const record = {
    plan: { devices: { selected: [{ path: "a" }, { path: "b" }], ancestors: ["p"] } },
    notes: {},
  } as unknown as AttemptRecord;
  assert.deepEqual(await reclaimReader(kernel, record).unreclaimed(), ["b"]);
  // After the kernel's finish the flags are clear: what the reclaim step saw counts.
  record.notes.devices = { unreclaimed_devices: [{ path: "c", unit: null }] };
  assert.deepEqual(await reclaimReader(undefined, record).unreclaimed(), ["c"]);
  assert.deepEqual(await reclaimReader(kernel, record).unreclaimed(), ["b", "c"]);
});

import assert from "node:assert/strict";
import { captureOutput } from "../host/mod.ts";
import { createLogger } from "../log/mod.ts";
import { type Answer, ScriptedBackend, VirtualClock } from "./_test_support.ts";
import { FleetCoordinator, type FleetCoordinatorOptions } from "./coordinator.ts";
import type { FleetDecision } from "./decision.ts";
import {
  FleetBackendError,
  FleetError,
  FleetSlotKeptError,
  FleetSlotLostError,
  FleetTimeoutError,
} from "./fleet_error.ts";
import { healthGate } from "./health.ts";
import { fleetMetricSamples } from "./metrics.ts";
import { FleetStateFile, readFleetState } from "./state_file.ts";
import { windowFromConfig } from "./window.ts";

const HOUR = 3_600_000;
// 2026-11-27 is a Friday.
const FRIDAY_21 = new Date("2026-11-27T21:00:00Z");

interface Setup {
  fleet: FleetCoordinator;
  backend: ScriptedBackend;
  clock: VirtualClock;
  log: ReturnType<typeof captureOutput>;
  dir: string;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  script: Answer[],
  options: Partial<FleetCoordinatorOptions> & { windowDays?: string[] } = {},
): Promise<Setup> {
  const clock = new VirtualClock(FRIDAY_21);
  const output = captureOutput();
  const log = createLogger({ output, clock, level: "debug", format: "json" });
  const backend = new ScriptedBackend(script);
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-fleet-unit-" });
  const window = options.windowDays === undefined ? undefined : windowFromConfig({
    days: options.windowDays,
    start: "22:00",
    length: 4 * HOUR,
    time_zone: "UTC",
  });
  const fleet = new FleetCoordinator({
    backend,
    hostId: "host-a",
    group: "rack-1",
    slots: 1,
    window,
    waitTimeoutMs: 24 * HOUR,
    retryIntervalMs: 30_000,
    retryJitterPercent: 25,
    healthTimeoutMs: 60_000,
    healthIntervalMs: 5_000,
    clock,
    log,
    info: { hostname: "node-a", agent: "0.1.0" },
    stateFile: new FleetStateFile(Deno, dir, log),
    random: () => 0.5,
    pid: 4242,
    ...options,
  });
  return {
    fleet,
    backend,
    clock,
    log: output,
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const kinds = (decisions: readonly FleetDecision[]) => decisions.map((d) => d.kind);

Deno.test("acquire waits for the maintenance window, then takes the slot", async () => {
  await using s = await setup(["grant"], { windowDays: ["fri"] });
  const slot = await s.fleet.acquire({ attempt: "a-1" });
  assert.deepEqual(kinds(slot.decisions), ["window-closed", "window-open", "slot-acquired"]);
  assert.equal(slot.decisions[0]!.fields.opens_at, "2026-11-27T22:00:00.000Z");
  // One hour to the opening plus a spread of half a retry interval (random 0.5),
  // in sleeps of at most five minutes (the window is read again after each).
  assert.equal(s.clock.sleeps.reduce((a, b) => a + b), HOUR + 15_000);
  assert.ok(s.clock.sleeps.every((ms) => ms <= 300_000));
  assert.equal(s.backend.requests.length, 1);
  assert.equal(s.backend.requests[0]!.info.attempt, "a-1");
  assert.equal(s.clock.now().toISOString(), "2026-11-27T22:00:15.000Z");
  const state = await readFleetState(Deno, s.dir);
  assert.equal(state?.phase, "holding");
  assert.equal(state?.pid, 4242);
  assert.equal(state?.window.open, true);
  assert.equal(state?.window.description, "fri 22:00 for 4h (UTC)");
});

Deno.test("a long window wait re-reads the window every five minutes", async () => {
  // Saturday's window: 25 hours away.
  await using s = await setup(["grant"], { windowDays: ["sat"], waitTimeoutMs: 48 * HOUR });
  await s.fleet.acquire();
  assert.equal(s.clock.sleeps.length, Math.ceil((25 * HOUR + 15_000) / 300_000));
  assert.ok(s.clock.sleeps.every((ms) => ms <= 300_000));
  assert.equal(s.clock.now().toISOString(), "2026-11-28T22:00:15.000Z");
});

Deno.test("a window that opens after wait_timeout gives up at once, changing nothing", async () => {
  await using s = await setup(["grant"], { windowDays: ["sat"], waitTimeoutMs: HOUR });
  const decisions: FleetDecision[] = [];
  const error = await s.fleet.acquire({ onDecision: (d) => void decisions.push(d) }).catch((e) =>
    e
  );
  assert.ok(error instanceof FleetTimeoutError);
  assert.equal(error.exitCode, 8);
  assert.match(
    error.message,
    /window opens at 2026-11-28T22:00:00\+00:00, after fleet\.wait_timeout/,
  );
  assert.deepEqual(kinds(decisions), ["window-closed", "wait-timeout"]);
  assert.deepEqual(s.clock.sleeps, []);
  assert.equal(s.backend.requests.length, 0, "never asked for a slot");
  assert.equal((await readFleetState(Deno, s.dir))?.phase, "timed-out");
});

Deno.test("--now overrides the window, and the override is recorded", async () => {
  await using s = await setup(["grant"], { windowDays: ["sat"] });
  const slot = await s.fleet.acquire({ override: { reason: "--now given by ops (ticket 42)" } });
  assert.deepEqual(kinds(slot.decisions), ["window-override", "slot-acquired"]);
  assert.equal(slot.decisions[0]!.fields.reason, "--now given by ops (ticket 42)");
  assert.deepEqual(s.clock.sleeps, []);
  const state = await readFleetState(Deno, s.dir);
  assert.equal(state?.override?.reason, "--now given by ops (ticket 42)");
  const line = s.log.text().split("\n").find((l) => l.includes('"window-override"'));
  assert.equal(JSON.parse(line!).level, "notice");
});

Deno.test("a busy fleet is retried with jitter; repeated answers are counted, not repeated", async () => {
  let n = 0;
  const randoms = [0, 0.999, 0.5];
  await using s = await setup(["full", "full", "full", "grant"], {
    random: () => randoms[n++ % 3]!,
  });
  const slot = await s.fleet.acquire();
  assert.deepEqual(kinds(slot.decisions), ["window-open", "slot-busy", "slot-acquired"]);
  assert.equal(slot.decisions[1]!.repeats, 2);
  assert.deepEqual(s.clock.sleeps, [22_500, 37_485, 30_000]);
  const debug = s.log.text().split("\n").filter((l) => l.includes('"slot-busy"'));
  assert.deepEqual(debug.map((l) => JSON.parse(l).level), ["info", "debug", "debug"]);
});

Deno.test("backend errors back off, doubling up to eight intervals", async () => {
  await using s = await setup(["error", "error", "error", "error", "error", "grant"]);
  const slot = await s.fleet.acquire();
  assert.deepEqual(s.clock.sleeps, [30_000, 60_000, 120_000, 240_000, 240_000]);
  assert.equal(slot.decisions.find((d) => d.kind === "backend-error")?.fields.kind, "unreachable");
});

Deno.test("a slot wait gives up after wait_timeout with the last reason", async () => {
  await using s = await setup(["full"], { waitTimeoutMs: 100_000 });
  const error = await s.fleet.acquire().catch((e) => e);
  assert.ok(error instanceof FleetTimeoutError);
  assert.match(error.message, /No fleet slot within fleet\.wait_timeout \(4 tries\): All 1 slot/);
  assert.deepEqual(s.clock.sleeps, [30_000, 30_000, 30_000]);
  const state = await readFleetState(Deno, s.dir);
  assert.equal(state?.phase, "timed-out");
  assert.equal(state?.attempts, 4);
  assert.deepEqual(state?.blocked_by, ["host-z"]);
});

Deno.test("a halted rollout is waited out; a slot this host keeps refuses at once", async () => {
  {
    await using s = await setup(["halted", "grant"]);
    const slot = await s.fleet.acquire();
    assert.deepEqual(kinds(slot.decisions), ["window-open", "fleet-halted", "slot-acquired"]);
  }
  {
    await using s = await setup(["kept"]);
    const error = await s.fleet.acquire().catch((e) => e);
    assert.ok(error instanceof FleetSlotKeptError);
    assert.equal(error.exitCode, 5);
    assert.match(error.message, /liveupdate-agent fleet release host-a/);
    assert.equal(s.backend.requests.length, 1, "no retries");
  }
});

Deno.test("an aborted wait stops at once", async () => {
  await using s = await setup(["full"]);
  const controller = new AbortController();
  controller.abort(new Error("SIGTERM"));
  await assert.rejects(s.fleet.acquire({ signal: controller.signal }), /SIGTERM/);
});

Deno.test("release waits for the health gate, then frees the slot", async () => {
  await using s = await setup(["grant"]);
  const slot = await s.fleet.acquire();
  await slot.persist("kernel-prepare");
  assert.deepEqual(s.backend.hold!.changes, [{ stage: "kernel-prepare", failed: false }]);
  let calls = 0;
  const gate = healthGate([{
    name: "units-active",
    check: () =>
      Promise.resolve(
        ++calls < 3
          ? { ok: false, detail: "vmm.service is activating" }
          : { ok: true, detail: "1 unit(s) active" },
      ),
  }]);
  s.clock.sleeps.length = 0;
  const outcome = await slot.release(gate);
  assert.equal(outcome.released, true);
  assert.deepEqual(s.clock.sleeps, [5_000, 5_000]);
  assert.equal(s.backend.hold!.released, 1);
  assert.deepEqual(kinds(slot.decisions).slice(-4), [
    "slot-persisted",
    "health-waiting",
    "health-passed",
    "slot-released",
  ]);
  assert.equal(slot.state, "released");
  assert.equal((await readFleetState(Deno, s.dir))?.phase, "released");
});

Deno.test("a host that stays unhealthy keeps its slot", async () => {
  await using s = await setup(["grant"], { healthTimeoutMs: 20_000 });
  const slot = await s.fleet.acquire();
  await slot.persist("kernel-prepare");
  const gate = healthGate([{
    name: "devices-reclaimed",
    check: () => Promise.resolve({ ok: false, detail: "not reclaimed: 0000:3b:00.0" }),
  }]);
  const outcome = await slot.release(gate);
  assert.equal(outcome.released, false);
  assert.equal(slot.state, "kept");
  const kept = s.backend.hold!.changes.at(-1)!;
  assert.equal(kept.failed, true);
  assert.equal(kept.stage, "health-gate");
  assert.match(
    kept.reason!,
    /unhealthy after finish: devices-reclaimed: not reclaimed: 0000:3b:00\.0/,
  );
  assert.equal(s.backend.hold!.released, 0);
  await assert.rejects(slot.release(gate), FleetError, "a kept slot is freed by an operator only");
});

Deno.test("a failing release is retried a bounded number of times", async () => {
  await using s = await setup(["grant"], { retryIntervalMs: 200 });
  const slot = await s.fleet.acquire();
  s.backend.hold!.releaseErrors = 2;
  assert.equal((await slot.release(undefined)).released, true);
  assert.equal(s.backend.hold!.released, 1);
  assert.equal(slot.decisions.filter((d) => d.kind === "backend-error").length, 1, "coalesced");
});

Deno.test("abandon frees an unused lease-bound slot only", async () => {
  await using s = await setup(["grant"]);
  const slot = await s.fleet.acquire();
  await slot.abandon("preflight refused: no target kernel");
  assert.equal(slot.state, "abandoned");
  assert.equal(s.backend.hold!.released, 1);
  await using t = await setup(["grant"]);
  const permanent = await t.fleet.acquire();
  await permanent.persist("kernel-prepare");
  await assert.rejects(permanent.abandon("too late"), /Cannot abandon .* it is persistent/);
});

Deno.test("a lost slot is recorded; keep() then halts the rollout without a slot", async () => {
  await using s = await setup(["grant"]);
  const slot = await s.fleet.acquire();
  s.backend.hold!.lose(new FleetSlotLostError("Lost the fleet slot: lease expired."));
  assert.throws(() => slot.assertHeld(), FleetSlotLostError);
  await assert.rejects(slot.persist("kernel-prepare"), FleetSlotLostError);
  assert.equal(slot.state, "lost");
  await slot.keep("rolled back");
  assert.deepEqual(s.backend.halts, ["host-a: rolled back"]);
  assert.deepEqual(kinds(slot.decisions).slice(-2), ["slot-lost", "slot-kept"]);
  assert.equal((await readFleetState(Deno, s.dir))?.phase, "lost");
});

Deno.test("metrics come from the state file", async () => {
  await using s = await setup(["full"], { waitTimeoutMs: 60_000 });
  await s.fleet.acquire().catch(() => {});
  const state = await readFleetState(Deno, s.dir);
  const samples = fleetMetricSamples(state, s.clock.now());
  const phase = samples.filter((m) => m.name === "liveupdate_fleet_phase" && m.value === 1);
  assert.deepEqual(phase.map((m) => m.labels.phase), ["timed-out"]);
  const attempts = samples.find((m) => m.name === "liveupdate_fleet_attempts");
  assert.equal(attempts?.value, 3);
  assert.equal(attempts?.labels.group, "rack-1");
  assert.deepEqual(fleetMetricSamples(undefined, new Date()), []);
  // While waiting, the wait time grows.
  const waiting = { ...state!, phase: "waiting-slot" as const };
  const wait = fleetMetricSamples(waiting, new Date(Date.parse(state!.wait_started_at!) + 90_000))
    .find((m) => m.name === "liveupdate_fleet_wait_seconds");
  assert.equal(wait?.value, 90);
});

Deno.test("resume retries while the backend cannot be reached (network still coming up)", async () => {
  await using s = await setup(["grant"], { retryIntervalMs: 1000 });
  const slot = await s.fleet.acquire();
  await slot.persist("kernel-prepare");
  let calls = 0;
  const original = s.backend.resume.bind(s.backend);
  s.backend.resume = () =>
    ++calls < 3
      ? Promise.reject(new FleetBackendError("down", { kind: "unreachable" }))
      : original();
  s.clock.sleeps.length = 0;
  const resumed = await s.fleet.resume();
  assert.ok(resumed);
  assert.equal(calls, 3);
  assert.deepEqual(s.clock.sleeps, [1000, 2000]);
  assert.deepEqual(kinds(resumed.decisions), ["backend-error", "slot-resumed"]);
  s.backend.resume = () => Promise.reject(new FleetBackendError("down", { kind: "unreachable" }));
  await using t = await setup(["grant"], { retryIntervalMs: 1000, waitTimeoutMs: 5000 });
  t.backend.resume = s.backend.resume;
  await assert.rejects(t.fleet.resume(), FleetBackendError);
});

Deno.test("a stopped wait says so in the state file", async () => {
  await using s = await setup(["full", "halted", "halted", "full"]);
  const controller = new AbortController();
  let tries = 0;
  const waiting = s.fleet.acquire({
    signal: controller.signal,
    onDecision: () => {
      if (++tries === 6) controller.abort(new Error("SIGTERM"));
    },
  });
  await assert.rejects(waiting, /SIGTERM/);
  const state = await readFleetState(Deno, s.dir);
  assert.equal(state?.phase, "stopped");
  assert.equal(state?.last_decision?.message, "SIGTERM");
});

Deno.test("waiting decisions of one kind in a row are one entry with the latest message", async () => {
  await using s = await setup(["grant"]);
  const messages = ["All 1 slot(s) are held (by host-y).", "All 1 slot(s) are held (by host-z)."];
  let n = 0;
  s.backend.tryAcquire = ((original) => (request) =>
    n < 2
      ? Promise.resolve({
        granted: false,
        reason: "full",
        message: messages[n++]!,
        holders: [],
        fields: {},
      })
      : original(request))(s.backend.tryAcquire.bind(s.backend));
  const slot = await s.fleet.acquire();
  const busy = slot.decisions.filter((d) => d.kind === "slot-busy");
  assert.equal(busy.length, 1);
  assert.equal(busy[0]!.repeats, 1);
  assert.equal(busy[0]!.message, messages[1]);
  const levels = s.log.text().split("\n").filter((l) => l.includes('"slot-busy"'))
    .map((l) => JSON.parse(l).level);
  assert.deepEqual(levels, ["info", "info"], "a new message is logged at its level");
});

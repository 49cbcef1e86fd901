import assert from "node:assert/strict";
import { loadConfig } from "../config/load.ts";
import { captureOutput, realClock } from "../host/mod.ts";
import { createLogger, streamSink } from "../log/mod.ts";
import { ExitCode } from "../exit_codes.ts";
import { FakeSystemd, type FakeUnit } from "./_fake_systemd.ts";
import { type JobRecord, SystemdManager, type UnitStatus } from "./manager.ts";
import {
  changesOf,
  checkPhases,
  type PhaseContext,
  type PhasePlan,
  phaseTarget,
  planPhase,
  runPhase,
  undoChanges,
} from "./phase.ts";
import {
  PhaseAbortedError,
  PhaseDisconnectedError,
  PhaseFailedError,
  PhaseTimeoutError,
  UnitPreflightError,
} from "./systemd_error.ts";

const TARGETS: Record<string, FakeUnit> = Object.fromEntries(
  ["prepare", "reboot", "updated", "finish", "cancel"].map((p) => [`liveupdate-${p}.target`, {}]),
);

async function setup(units: Record<string, FakeUnit>) {
  const fake = new FakeSystemd({ ...TARGETS, ...units });
  const manager = await SystemdManager.connect(fake.connector(), "unix:path=/fake");
  const output = captureOutput();
  const log = createLogger({ sink: streamSink(output, "text"), clock: realClock, level: "debug" });
  const context: PhaseContext = { manager, log, clock: realClock };
  return { fake, manager, context, output };
}

function plan(parts: Partial<PhasePlan> = {}): PhasePlan {
  return {
    phase: "prepare",
    stop: [],
    start: [],
    target: "liveupdate-prepare.target",
    timeoutMs: 10_000,
    ...parts,
  };
}

function status(name: string, activeState: string): UnitStatus {
  return { name, loadState: "loaded", activeState, subState: "", jobType: "", path: "" };
}

async function rejection<T extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => T,
): Promise<T> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected ${type.name}, but it resolved`);
}

Deno.test("the plan of a phase comes from phases.<phase> and names its target", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-phase-" });
  try {
    await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/etc/liveupdate/config.d/50.toml`,
      '[phases.prepare]\nstop = ["vmm.service"]\nstart = ["ckpt.service"]\ntimeout = "90s"\n',
    );
    const { config } = await loadConfig(Deno, { root });
    assert.deepEqual(planPhase(config, "prepare"), {
      phase: "prepare",
      stop: ["vmm.service"],
      start: ["ckpt.service"],
      target: "liveupdate-prepare.target",
      timeoutMs: 90_000,
    });
    assert.equal(phaseTarget("updated"), "liveupdate-updated.target");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("preflight lists every problem and refuses with exit code 5", async () => {
  const { fake, manager } = await setup({
    "masked.service": { loadState: "masked" },
    "broken.service": { loadState: "bad-setting" },
    "tmpl@.service": {},
    "ok.service": {},
  });
  fake.units.delete("liveupdate-reboot.target");
  await using _ = manager;
  const error = await rejection(
    checkPhases(manager, [
      plan({
        stop: ["gone.service", "masked.service"],
        start: ["masked.service", "broken.service"],
      }),
      plan({ phase: "reboot", target: "liveupdate-reboot.target", start: ["tmpl@.service"] }),
    ]),
    UnitPreflightError,
  );
  assert.equal(error.exitCode, ExitCode.Refused);
  assert.deepEqual(error.problems.map((p) => `${p.unit} | ${p.source} | ${p.reason}`), [
    'gone.service | phases.prepare.stop | does not exist (LoadState "not-found")',
    "masked.service | phases.prepare.stop | is also in phases.prepare.start; a phase either stops or starts a unit",
    'masked.service | phases.prepare.start | is masked (LoadState "masked")',
    'broken.service | phases.prepare.start | cannot be loaded (LoadState "bad-setting"); see systemd-analyze verify',
    "tmpl@.service | phases.reboot.start | is a template; name an instance instead (such as foo@1.service)",
    'liveupdate-reboot.target | the phase target of "reboot" | is not loadable (LoadState "not-found"); the agent\'s units are not installed correctly',
  ]);
  assert.match(
    error.message,
    /^Unit "gone\.service" in phases\.prepare\.stop does not exist .* \(and 5 more problem\(s\)\)\. Nothing was changed\./,
  );
  assert.ok(!fake.calls.some((c) => c.member === "EnqueueUnitJob"), "nothing submitted");
});

Deno.test("what changed: net state changes only, by result or by the state after", () => {
  const own = new Set(["liveupdate-prepare.target"]);
  const before = new Map([
    ["was-on.service", status("was-on.service", "active")],
    ["was-off.service", status("was-off.service", "inactive")],
    ["already-on.service", status("already-on.service", "active")],
    ["cancelled.service", status("cancelled.service", "inactive")],
    ["refused.service", status("refused.service", "active")],
  ]);
  const after = new Map([
    ["cancelled.service", status("cancelled.service", "activating")],
    ["pulled-failed.service", status("pulled-failed.service", "failed")],
  ]);
  const records: JobRecord[] = [
    { unit: "was-on.service", type: "stop", anchor: true, result: "done" },
    { unit: "was-off.service", type: "start", anchor: true, result: "done" },
    { unit: "already-on.service", type: "start", anchor: true, result: "done" },
    { unit: "cancelled.service", type: "start", anchor: true, result: "canceled", timedOut: true },
    { unit: "refused.service", type: "stop", anchor: true, result: "refused" },
    { unit: "pulled.service", type: "start", anchor: false, result: "done" },
    { unit: "pulled-failed.service", type: "start", anchor: false, result: "failed" },
    { unit: "dependent.service", type: "stop", anchor: false, result: "done" },
    { unit: "lost.service", type: "start", anchor: false },
    { unit: "liveupdate-cancel.target", type: "stop", anchor: false, result: "done" },
    { unit: "liveupdate-prepare.target", type: "start", anchor: true, result: "done" },
    { unit: "restarted.service", type: "restart", anchor: true, result: "done" },
  ];
  const { changes, uncertain } = changesOf(records, before, after, own);
  assert.deepEqual(changes.stopped, ["was-on.service", "dependent.service"]);
  assert.deepEqual(changes.started, [
    "was-off.service",
    "cancelled.service",
    "pulled.service",
    "liveupdate-prepare.target",
  ]);
  assert.deepEqual(uncertain, ["lost.service"]);
  // A unit stopped and started again within one phase is no change at all.
  const back = changesOf(
    [
      { unit: "x.service", type: "stop", anchor: true, result: "done" },
      { unit: "x.service", type: "start", anchor: false, result: "done" },
    ],
    new Map([["x.service", status("x.service", "active")]]),
    undefined,
    own,
  );
  assert.deepEqual(back.changes, { stopped: [], started: [] });
});

Deno.test("a phase runs its stop wave, then its start wave with the target", async () => {
  const { fake, manager, context, output } = await setup({
    "a.service": { activeState: "active" },
    "b.service": {},
  });
  await using _ = manager;
  const report = await runPhase(context, plan({ stop: ["a.service"], start: ["b.service"] }));
  assert.deepEqual(report.changes, {
    stopped: ["a.service"],
    started: ["b.service", "liveupdate-prepare.target"],
  });
  const jobs = fake.calls.filter((c) => c.member === "EnqueueUnitJob").map((c) => c.body);
  assert.deepEqual(jobs, [
    ["a.service", "stop", "replace"],
    ["b.service", "start", "replace"],
    ["liveupdate-prepare.target", "start", "replace"],
  ]);
  assert.match(output.text(), /Phase "prepare" done in \d+ ms: stopped 1, started 2 unit\(s\)\./);
  // Undo: stop what was started (in reverse), then start what was stopped.
  fake.calls.length = 0;
  const undo = await undoChanges(context, report.changes, 10_000);
  assert.deepEqual(
    fake.calls.filter((c) => c.member === "EnqueueUnitJob").map((c) => c.body),
    [
      ["liveupdate-prepare.target", "stop", "replace"],
      ["b.service", "stop", "replace"],
      ["a.service", "start", "replace"],
    ],
  );
  assert.deepEqual(undo.changes, {
    stopped: ["liveupdate-prepare.target", "b.service"],
    started: ["a.service"],
  });
});

Deno.test("a failure in the stop wave keeps the start wave from running", async () => {
  const { fake, manager, context } = await setup({
    "a.service": { activeState: "active", result: "failed", serviceResult: "signal" },
    "b.service": {},
  });
  await using _ = manager;
  const error = await rejection(
    runPhase(context, plan({ stop: ["a.service"], start: ["b.service"] })),
    PhaseFailedError,
  );
  assert.deepEqual(error.failures, [
    { unit: "a.service", type: "stop", result: "failed", unitResult: "signal" },
  ]);
  assert.equal(error.unit, "a.service");
  assert.deepEqual(error.changes, { stopped: [], started: [] });
  assert.ok(!fake.calls.some((c) => c.body?.[0] === "b.service" && c.member === "EnqueueUnitJob"));
});

Deno.test("a phase that outlives its timeout reports the pending units", async () => {
  const { manager, context } = await setup({ "hung.service": { hang: true } });
  await using _ = manager;
  const error = await rejection(
    runPhase(context, plan({ start: ["hung.service"], timeoutMs: 30 })),
    PhaseTimeoutError,
  );
  assert.deepEqual(error.pending, ["hung.service"]);
  assert.match(error.message, /^Phase "prepare" timed out after 30 ms waiting for "hung\.service"/);
  assert.deepEqual(error.changes.started, ["liveupdate-prepare.target"]);
});

Deno.test("an aborted phase cancels what waits and submits no further wave", async () => {
  const { fake, manager, context } = await setup({
    "hung.service": { activeState: "active", hang: true },
    "b.service": {},
  });
  await using _ = manager;
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 30);
  const error = await rejection(
    runPhase(
      { ...context, signal: controller.signal },
      plan({ stop: ["hung.service"], start: ["b.service"], timeoutMs: 3_600_000 }),
    ),
    PhaseAbortedError,
  );
  assert.deepEqual(error.pending, ["hung.service"]);
  assert.match(error.message, /^Phase "prepare" was stopped .* "hung\.service"/);
  assert.ok(!fake.calls.some((c) => c.body?.[0] === "b.service" && c.member === "EnqueueUnitJob"));
  // Aborted before it starts: nothing is submitted at all.
  const calls = fake.calls.length;
  await rejection(
    runPhase({ ...context, signal: controller.signal }, plan({ start: ["b.service"] })),
    PhaseAbortedError,
  );
  assert.ok(!fake.calls.slice(calls).some((c) => c.member === "EnqueueUnitJob"));
});

Deno.test("a disconnect mid-phase is a PhaseDisconnectedError, not a hang", async () => {
  const { fake, manager, context } = await setup({
    "hung.service": { hang: true },
    "ok.service": {},
  });
  await using _ = manager;
  setTimeout(() => fake.drop(), 30);
  const error = await rejection(
    runPhase(context, plan({ start: ["ok.service", "hung.service"], timeoutMs: 3_600_000 })),
    PhaseDisconnectedError,
  );
  assert.deepEqual(error.uncertain, ["hung.service"]);
  assert.ok(error.changes.started.includes("ok.service"));
  assert.match(error.message, /^Phase "prepare" lost its D-Bus connection/);
});

Deno.test("undoing nothing sends nothing", async () => {
  const { fake, manager, context } = await setup({});
  await using _ = manager;
  const before = fake.calls.length;
  const undo = await undoChanges(context, { stopped: [], started: [] }, 1000);
  assert.deepEqual(undo.changes, { stopped: [], started: [] });
  assert.equal(fake.calls.length, before);
});

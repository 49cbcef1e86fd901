import assert from "node:assert/strict";
import { ATTEMPT_SCHEMA, type AttemptRecord } from "../store/mod.ts";
import { runSteps, type Step, undoSteps } from "./steps.ts";

function record(): AttemptRecord {
  return {
    schema: ATTEMPT_SCHEMA,
    id: "t",
    agent_version: "0",
    backend: "rfc-v1",
    status: "preparing",
    created: "",
    updated: "",
    kernels: {
      running: { release: null, luo_version: null },
      target: { release: null, luo_version: null },
    },
    compat: { verdict: "compatible", reason: "", override: false },
    plan: {},
    steps: [],
    timings: {},
    overrides: [],
    notes: {},
  };
}

/**
 * A host where each step turns its own switch on and undo puts it back; `value`
 * counts the switches that are on.
 */
function world() {
  const switches: Record<string, number> = {};
  const state = {
    get value() {
      return Object.values(switches).reduce((a, b) => a + b, 0);
    },
    log: [] as string[],
    saves: [] as string[],
  };
  const step = (name: string, fail = false, undoFails = false): Step<number, number> => ({
    name,
    snapshot: () => Promise.resolve(switches[name] ?? 0),
    run: () => {
      state.log.push(`run ${name}`);
      if (fail) return Promise.reject(new Error(`${name} broke`));
      switches[name] = 1;
      return Promise.resolve(state.value);
    },
    undo: (before) => {
      state.log.push(`undo ${name}`);
      if (undoFails) return Promise.reject(new Error(`${name} undo broke`));
      switches[name] = before;
      return Promise.resolve();
    },
  });
  const options = {
    now: () => new Date("2026-11-25T20:00:00Z"),
    save: (r: AttemptRecord) => {
      state.saves.push(r.steps.map((s) => `${s.name}:${s.status}`).join(","));
      return Promise.resolve();
    },
  };
  return { state, step, options };
}

Deno.test("steps run in order and are journaled before and after", async () => {
  const { state, step, options } = world();
  const r = record();
  const outcome = await runSteps(r, [step("a"), step("b")], options);
  assert.deepEqual(outcome, { ok: true });
  assert.equal(state.value, 2);
  assert.deepEqual(state.saves, ["a:started", "a:done", "a:done,b:started", "a:done,b:done"]);
  assert.deepEqual(r.steps.map((s) => [s.name, s.undo, s.result]), [["a", 0, 1], ["b", 0, 2]]);
});

Deno.test("a failure undoes every begun step in reverse and restores the start", async () => {
  const { state, step, options } = world();
  const r = record();
  const outcome = await runSteps(r, [step("a"), step("b"), step("c", true), step("d")], options);
  assert.equal(outcome.ok, false);
  if (outcome.ok) return;
  assert.equal(outcome.failed, "c");
  assert.match(String(outcome.error), /c broke/);
  assert.deepEqual(outcome.undo, { undone: ["c", "b", "a"], failures: [] });
  assert.equal(state.value, 0);
  assert.deepEqual(state.log, ["run a", "run b", "run c", "undo c", "undo b", "undo a"]);
  assert.deepEqual(r.steps.map((s) => s.status), ["undone", "undone", "undone"]);
});

Deno.test("a failing undo is recorded and the other undos still run", async () => {
  const { state, step, options } = world();
  const r = record();
  const outcome = await runSteps(r, [step("a"), step("b", false, true), step("c", true)], options);
  assert.equal(outcome.ok, false);
  if (outcome.ok) return;
  assert.deepEqual(outcome.undo.undone, ["c", "a"]);
  assert.deepEqual(outcome.undo.failures.map((f) => f.step), ["b"]);
  assert.deepEqual(r.steps.map((s) => s.status), ["undone", "undo-failed", "undone"]);
  assert.equal(r.steps[1]!.undo_error, "b undo broke");
  assert.equal(r.steps[2]!.error, "c broke", "the failing step's own error is kept");
  // A later recover retries only what is not undone.
  const steps = new Map([["a", step("a")], ["b", step("b")], ["c", step("c")]]);
  state.log.length = 0;
  const retry = await undoSteps(r, steps, options);
  assert.deepEqual(retry, { undone: ["b"], failures: [] });
  assert.equal(r.steps[1]!.undo_error, undefined);
  assert.deepEqual(state.log, ["undo b"]);
  assert.equal(state.value, 0);
});

Deno.test("a step interrupted after 'started' is undone from its snapshot alone", async () => {
  const { state, step, options } = world();
  const r = record();
  r.steps.push({ name: "a", status: "done", started: "", undo: 0, result: 1 });
  r.steps.push({ name: "b", status: "started", started: "", undo: 0 });
  // Both had acted before the crash; b's result was never journaled.
  await step("a").run(0);
  await step("b").run(0);
  assert.equal(state.value, 2);
  const outcome = await undoSteps(r, new Map([["a", step("a")], ["b", step("b")]]), options);
  assert.deepEqual(outcome, { undone: ["b", "a"], failures: [] });
  assert.equal(state.value, 0);
});

Deno.test("a journal that cannot be saved fails the step and still undoes", async () => {
  const { state, step } = world();
  const r = record();
  let saves = 0;
  const options = {
    now: () => new Date(),
    save: () => (++saves === 3 ? Promise.reject(new Error("disk full")) : Promise.resolve()),
  };
  const outcome = await runSteps(r, [step("a"), step("b")], options);
  assert.equal(outcome.ok, false);
  if (outcome.ok) return;
  assert.equal(outcome.failed, "b");
  assert.match(String(outcome.error), /disk full/);
  assert.equal(state.value, 0);
});

Deno.test("an unknown journaled step is reported, not skipped silently", async () => {
  const { options } = world();
  const r = record();
  r.steps.push({ name: "from-the-future", status: "done", started: "" });
  const outcome = await undoSteps(r, new Map(), options);
  assert.equal(outcome.failures.length, 1);
  assert.match(String(outcome.failures[0]!.error), /not known to this agent version/);
});

Deno.test("a partial failure journals what changed, and an abort stops before the next step", async () => {
  const { options } = world();
  const r = record();
  const undone: unknown[] = [];
  const partial: Step<null, string> = {
    name: "half",
    run: () => Promise.reject(Object.assign(new Error("half done"), { partialResult: "did-a" })),
    undo: (_snapshot, result) => {
      undone.push(result);
      return Promise.resolve();
    },
  };
  const outcome = await runSteps(r, [partial], options);
  assert.equal(outcome.ok, false);
  assert.equal(r.steps[0]!.result, "did-a");
  assert.deepEqual(undone, ["did-a"]);

  const controller = new AbortController();
  const r2 = record();
  const ran: string[] = [];
  const first: Step = {
    name: "first",
    run: () => {
      ran.push("first");
      controller.abort(new Error("SIGTERM"));
      return Promise.resolve();
    },
    undo: () => Promise.resolve(void ran.push("undo first")),
  };
  const second: Step = { name: "second", run: () => Promise.resolve(void ran.push("second")) };
  const aborted = await runSteps(r2, [first, second], { ...options, signal: controller.signal });
  assert.equal(aborted.ok, false);
  if (aborted.ok) return;
  assert.equal(aborted.failed, "second");
  assert.match(String(aborted.error), /SIGTERM/);
  assert.deepEqual(ran, ["first", "undo first"]);
});

Deno.test("a step whose snapshot fails never acts and needs no undo", async () => {
  const { state, step, options } = world();
  const r = record();
  const broken: Step<number, number> = {
    ...step("b"),
    snapshot: () => Promise.reject(new Error("cannot read the units")),
  };
  const failures: string[] = [];
  const outcome = await runSteps(r, [step("a"), broken, step("c")], {
    ...options,
    onFailure: (name, error) => failures.push(`${name}: ${(error as Error).message}`),
  });
  assert.equal(outcome.ok, false);
  if (outcome.ok) return;
  assert.equal(outcome.failed, "b");
  assert.deepEqual(failures, ["b: cannot read the units"]);
  assert.deepEqual(outcome.undo, { undone: ["a"], failures: [] });
  assert.deepEqual(state.log, ["run a", "undo a"]);
  assert.deepEqual(r.steps.map((s) => [s.name, s.status]), [["a", "undone"], ["b", "undone"]]);
  assert.match(r.steps[1]!.error!, /Reading the state before the step failed/);
  assert.equal(state.value, 0);
});

Deno.test("onFailure is called before the failure is journaled and undone", async () => {
  const { step, options, state } = world();
  const r = record();
  const outcome = await runSteps(r, [step("a"), step("b", true)], {
    ...options,
    onFailure: (name) => {
      r.notes.failure = { step: name };
      state.log.push(`failure ${name}`);
    },
  });
  assert.equal(outcome.ok, false);
  assert.deepEqual(state.log, ["run a", "run b", "failure b", "undo b", "undo a"]);
  // The first save after the failure (b: failed) already carries the note.
  assert.ok(state.saves.includes("a:done,b:failed"));
});

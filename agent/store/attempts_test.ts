import assert from "node:assert/strict";
import { ATTEMPT_SCHEMA, type AttemptRecord, newAttemptId } from "./attempt.ts";
import { AttemptStore } from "./attempts.ts";
import { StoreError } from "./store_error.ts";
import { SMALLEST_PLAN } from "./test_plan.ts";

function attempt(id: string, status: AttemptRecord["status"] = "succeeded"): AttemptRecord {
  return {
    schema: ATTEMPT_SCHEMA,
    id,
    agent_version: "0.1.0",
    backend: "rfc-v1",
    status,
    created: "2026-11-25T20:00:00.000Z",
    updated: "2026-11-25T20:00:00.000Z",
    kernels: {
      running: { release: "6.12.0", luo_version: "1.0" },
      target: { release: "6.12.1", luo_version: "1.0" },
    },
    compat: { verdict: "compatible", reason: "Same LUO version 1.0.", override: false },
    plan: SMALLEST_PLAN,
    steps: [{ name: "record", status: "done", started: "2026-11-25T20:00:00.000Z" }],
    timings: {},
    overrides: [],
    notes: {},
  };
}

async function withStore(fn: (store: AttemptStore, dir: string) => Promise<void>, keep = 50) {
  const dir = await Deno.makeTempDir();
  try {
    const store = new AttemptStore(Deno, `${dir}/state`, keep);
    await store.ensure();
    await fn(store, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const now = new Date("2026-11-25T21:00:00.000Z");

Deno.test("records round-trip with private modes", async () => {
  await withStore(async (store, dir) => {
    const record = attempt("20261125T200000Z-aaaaaa");
    await store.save(record, now);
    assert.deepEqual(await store.load(record.id), { ...record, updated: now.toISOString() });
    assert.equal((await Deno.stat(store.pathOf(record.id))).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(store.dir)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(`${dir}/state`)).mode! & 0o777, 0o700);
  });
});

Deno.test("list is newest first; open finds the unfinished newest attempt", async () => {
  await withStore(async (store) => {
    await store.save(attempt("20261125T200000Z-aaaaaa"), now);
    await store.save(attempt("20261125T210000Z-bbbbbb", "kexec-issued"), now);
    const { records, unreadable } = await store.list();
    assert.deepEqual(records.map((r) => r.id), [
      "20261125T210000Z-bbbbbb",
      "20261125T200000Z-aaaaaa",
    ]);
    assert.deepEqual(unreadable, []);
    assert.equal((await store.open())?.id, "20261125T210000Z-bbbbbb");
    // A refused attempt (it changed nothing) does not hide the open one.
    await store.save(attempt("20261125T213000Z-refuse", "refused"), now);
    assert.equal((await store.open())?.id, "20261125T210000Z-bbbbbb");
    await store.save(attempt("20261125T220000Z-cccccc", "failed"), now);
    assert.equal(await store.open(), undefined);
  });
});

const DAMAGED: [string, (text: string) => string, RegExp][] = [
  ["truncated", (t) => t.slice(0, t.length / 2), /not valid JSON \(truncated or damaged\)/],
  ["empty", () => "", /not valid JSON/],
  ["not an object", () => "[1,2]", /not a JSON object/],
  ["future schema", (t) => t.replace('"schema": 1', '"schema": 2'), /schema is 2, not 1/],
  [
    "bad status",
    (t) => t.replace('"status": "succeeded"', '"status": "exploded"'),
    /"status" is "exploded"/,
  ],
  [
    "bad step",
    (t) => t.replace('"status": "done"', '"status": "maybe"'),
    /step 1 \("record"\) has an unknown status/,
  ],
  [
    "id mismatch",
    (t) => t.replace('"id": "20261125T200000Z-aaaaaa"', '"id": "other"'),
    /does not match its file name/,
  ],
  [
    "bad id",
    (t) => t.replace('"id": "20261125T200000Z-aaaaaa"', '"id": "../../etc"'),
    /not an attempt id/,
  ],
  ["no kernels", (t) => t.replace('"kernels"', '"kernelz"'), /"kernels" lacks/],
  ["binary garbage", () => "\u0000\u0001\u00ff", /not valid JSON/],
];

for (const [name, damage, expected] of DAMAGED) {
  Deno.test(`a damaged record (${name}) is a clear error and never stops the history`, async () => {
    await withStore(async (store) => {
      const record = attempt("20261125T200000Z-aaaaaa");
      await store.save(record, now);
      await store.save(attempt("20261125T190000Z-zzzzzz"), now);
      const path = store.pathOf(record.id);
      await Deno.writeTextFile(path, damage(await Deno.readTextFile(path)));
      const error = await store.load(record.id).catch((e) => e);
      assert.ok(error instanceof StoreError, String(error));
      assert.match(error.message, expected);
      assert.match(error.message, /Run 'liveupdate-agent recover'/);
      const { records, unreadable } = await store.list();
      assert.deepEqual(records.map((r) => r.id), ["20261125T190000Z-zzzzzz"]);
      assert.equal(unreadable.length, 1);
      assert.equal(unreadable[0]!.path, path);
      const aside = await store.setAside(path);
      assert.equal(aside, `${path}.corrupt`);
      assert.deepEqual((await store.list()).unreadable, []);
    });
  });
}

Deno.test("prune keeps the newest records and never removes an unfinished one", async () => {
  await withStore(async (store) => {
    await store.save(attempt("20261125T100000Z-aaaaaa", "preparing"), now);
    for (let hour = 11; hour <= 15; hour++) {
      await store.save(attempt(`20261125T${hour}0000Z-bbbbbb`), now);
    }
    const removed = await store.prune();
    assert.equal(removed.length, 3);
    const { records } = await store.list();
    assert.deepEqual(records.map((r) => r.id), [
      "20261125T150000Z-bbbbbb",
      "20261125T140000Z-bbbbbb",
      "20261125T100000Z-aaaaaa",
    ]);
  }, 2);
});

Deno.test("attempt ids sort by time and are unique", () => {
  const a = newAttemptId(new Date("2026-11-25T20:00:00.123Z"));
  const b = newAttemptId(new Date("2026-11-25T20:00:01.000Z"));
  const c = newAttemptId(new Date("2026-11-25T20:00:00.124Z"));
  assert.match(a, /^20261125T200000\.123Z-[0-9a-f]{6}$/);
  assert.ok(a < b);
  assert.ok(a < c, "within one second, by the millisecond");
  assert.notEqual(newAttemptId(new Date(0)), newAttemptId(new Date(0)));
});

Deno.test("an open attempt whose plan lacks what recovery acts on is unusable, not a crash", async () => {
  await withStore(async (store) => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["no phases", { ...SMALLEST_PLAN, phases: undefined }, /field "plan" has no "phases" list/],
      [
        "a missing phase",
        { ...SMALLEST_PLAN, phases: SMALLEST_PLAN.phases.slice(1) },
        /has no phase "prepare"/,
      ],
      [
        "a bad phase",
        { ...SMALLEST_PLAN, phases: [{ phase: "prepare" }, ...SMALLEST_PLAN.phases] },
        /has a phase 1 that is not/,
      ],
      ["no devices", { ...SMALLEST_PLAN, devices: {} }, /has no "devices"/],
      [
        "a bad change",
        { ...SMALLEST_PLAN, devices: { ...SMALLEST_PLAN.devices, changes: [{ path: 1 }] } },
        /lists a device change that is not/,
      ],
      ["no target", { ...SMALLEST_PLAN, target: null }, /has no "target"/],
    ];
    for (const [index, [name, plan, says]] of cases.entries()) {
      const record = attempt(`20261125T20000${index}Z-aaaaaa`, "preparing");
      record.plan = plan;
      await store.save(record, now);
      const { unreadable } = await store.list();
      assert.ok(unreadable.some((bad) => says.test(bad.problem)), name);
      await Deno.remove(store.pathOf(record.id));
    }
    // An attempt that has ended is only read, never acted on: its plan is not checked.
    const ended = attempt("20261125T200009Z-bbbbbb", "rolled-back");
    ended.plan = {};
    await store.save(ended, now);
    assert.equal((await store.list()).records.length, 1);
  });
});

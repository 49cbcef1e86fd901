import assert from "node:assert/strict";
import { FakeSystemd } from "./_fake_systemd.ts";
import { SystemdManager } from "./manager.ts";
import { BusCallError, BusDisconnectedError } from "./systemd_error.ts";

async function connect(fake: FakeSystemd): Promise<SystemdManager> {
  return await SystemdManager.connect(fake.connector(), "unix:path=/fake");
}

Deno.test("connect subscribes to JobRemoved before anything else", async () => {
  const fake = new FakeSystemd({});
  await using _manager = await connect(fake);
  assert.deepEqual(fake.calls.map((c) => c.member), ["AddMatch", "Subscribe"]);
  assert.match(String(fake.calls[0]!.body![0]), /member='JobRemoved'/);
});

Deno.test("all jobs of a batch are written before the first reply (pipelined)", async () => {
  const units = Object.fromEntries(
    Array.from({ length: 50 }, (_, i) => [`u${i}.service`, {}]),
  );
  const fake = new FakeSystemd(units);
  await using manager = await connect(fake);
  const run = await manager.runJobs(
    Object.keys(units).map((unit) => ({ unit, type: "start" as const })),
    { timeoutMs: 10_000 },
  );
  assert.equal(fake.writtenAtFirstReply, 50);
  assert.equal(run.ended, "complete");
  assert.equal(run.records.length, 50);
  assert.ok(run.records.every((r) => r.result === "done" && r.anchor));
});

Deno.test("a result that arrives before the reply naming its job is not missed", async () => {
  const fake = new FakeSystemd({ "fast.service": { resultBeforeReply: true, result: "failed" } });
  await using manager = await connect(fake);
  const run = await manager.runJobs([{ unit: "fast.service", type: "start" }], {
    timeoutMs: 10_000,
  });
  assert.equal(run.ended, "complete");
  assert.equal(run.records[0]!.result, "failed");
});

Deno.test("jobs the transaction adds are followed too", async () => {
  const fake = new FakeSystemd({
    "a.service": { adds: [["b.service", "start"], ["c.service", "stop"]] },
    "b.service": {},
    "c.service": { result: "timeout" },
  });
  await using manager = await connect(fake);
  const run = await manager.runJobs([{ unit: "a.service", type: "start" }], { timeoutMs: 10_000 });
  assert.deepEqual(
    run.records.map((r) => [r.unit, r.type, r.anchor, r.result]),
    [
      ["a.service", "start", true, "done"],
      ["b.service", "start", false, "done"],
      ["c.service", "stop", false, "timeout"],
    ],
  );
});

Deno.test("a refused job is recorded with its D-Bus error; the others still run", async () => {
  const fake = new FakeSystemd({
    "ok.service": {},
    "pinned.service": { refuse: "org.freedesktop.systemd1.OnlyByDependency" },
  });
  await using manager = await connect(fake);
  const run = await manager.runJobs([
    { unit: "pinned.service", type: "stop" },
    { unit: "ok.service", type: "stop" },
  ], { timeoutMs: 10_000 });
  assert.deepEqual(run.records.map((r) => [r.unit, r.result, r.dbusName]), [
    ["pinned.service", "refused", "org.freedesktop.systemd1.OnlyByDependency"],
    ["ok.service", "done", undefined],
  ]);
});

Deno.test("at the timeout, jobs still queued are cancelled and marked", async () => {
  const fake = new FakeSystemd({ "hung.service": { hang: true }, "ok.service": {} });
  await using manager = await connect(fake);
  const run = await manager.runJobs([
    { unit: "hung.service", type: "start" },
    { unit: "ok.service", type: "start" },
  ], { timeoutMs: 50 });
  assert.equal(run.ended, "timeout");
  assert.deepEqual(run.records.map((r) => [r.unit, r.result, r.timedOut]), [
    ["hung.service", "canceled", true],
    ["ok.service", "done", undefined],
  ]);
  assert.ok(fake.calls.some((c) => c.member === "Cancel"));
});

Deno.test("an abort ends the batch: jobs still queued are cancelled and marked", async () => {
  const fake = new FakeSystemd({ "hung.service": { hang: true }, "ok.service": {} });
  await using manager = await connect(fake);
  const controller = new AbortController();
  const running = manager.runJobs([
    { unit: "hung.service", type: "start" },
    { unit: "ok.service", type: "start" },
  ], { timeoutMs: 3_600_000, signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  const run = await running;
  assert.equal(run.ended, "aborted");
  assert.deepEqual(run.records.map((r) => [r.unit, r.result, r.timedOut]), [
    ["hung.service", "canceled", true],
    ["ok.service", "done", undefined],
  ]);
  assert.ok(fake.calls.some((c) => c.member === "Cancel"));
});

Deno.test("a disconnect while waiting ends the batch at once", async () => {
  const fake = new FakeSystemd({ "hung.service": { hang: true } });
  await using manager = await connect(fake);
  const running = manager.runJobs([{ unit: "hung.service", type: "start" }], {
    timeoutMs: 3_600_000,
  });
  setTimeout(() => fake.drop(), 20);
  const run = await running;
  assert.equal(run.ended, "disconnected");
  assert.ok(run.disconnect instanceof BusDisconnectedError);
  assert.equal(run.records[0]!.result, undefined);
  assert.equal(manager.connected, false);
});

Deno.test("a disconnect before the replies leaves every request pending", async () => {
  const fake = new FakeSystemd({ "a.service": {} });
  await using manager = await connect(fake);
  const running = manager.runJobs([{ unit: "a.service", type: "start" }], { timeoutMs: 10_000 });
  fake.drop();
  const run = await running;
  assert.equal(run.ended, "disconnected");
  assert.deepEqual(run.records.map((r) => [r.unit, r.result]), [["a.service", undefined]]);
});

Deno.test("D-Bus errors name the unit and the D-Bus error", async () => {
  const fake = new FakeSystemd({});
  await using manager = await connect(fake);
  await assert.rejects(manager.startKexec(), (error: unknown) => {
    assert.ok(error instanceof BusCallError);
    assert.equal(error.unit, "kexec.target");
    assert.equal(error.dbusName, "org.freedesktop.DBus.Error.UnknownMethod");
    assert.match(error.message, /^systemd refused StartUnit for unit "kexec\.target": /);
    return true;
  });
});

Deno.test("unit states come from one ListUnitsByNames call", async () => {
  const fake = new FakeSystemd({ "a.service": { activeState: "active" } });
  await using manager = await connect(fake);
  const states = await manager.unitStatuses(["a.service", "gone.service"]);
  assert.deepEqual(states.map((s) => [s.name, s.loadState, s.activeState]), [
    ["a.service", "loaded", "active"],
    ["gone.service", "not-found", "inactive"],
  ]);
  assert.equal(fake.calls.filter((c) => c.member === "ListUnitsByNames").length, 1);
  assert.deepEqual(await manager.unitStatuses([]), []);
});

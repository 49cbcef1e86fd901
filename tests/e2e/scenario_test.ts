import assert from "node:assert/strict";
import type { GuestEvent } from "./channel.ts";
import { type Scenario, ScenarioResult } from "./scenario.ts";

const scenario: Scenario = { name: "t", summary: "test", guest: "/nonexistent", boots: 2 };

function event(kind: GuestEvent["kind"], boot: number, name: string, value: string, at: number) {
  return { kind, boot, name, value, at };
}

const run: GuestEvent[] = [
  event("boot", 1, "cold", "root=/dev/vda", 20_000),
  event("check", 1, "state", "ok", 21_000),
  event("value", 1, "kexec-load-seconds", "1.50", 22_000),
  event("reboot", 1, "kexec", "30.1", 25_000),
  event("boot", 2, "kexec", "root=/dev/vda luo_e2e.via=kexec", 60_000),
  event("verdict", 2, "pass", "", 70_000),
];

Deno.test("scenario result: timings of boots, reboots, guest measurements and the run", () => {
  const result = new ScenarioResult(scenario, run, "", "");
  assert.ok(result.passed);
  assert.deepEqual(result.timings, [
    { name: "boot 1 (qemu start to boot complete)", seconds: 20 },
    { name: "boot 2 (kexec requested to boot complete, came up kexec)", seconds: 35 },
    { name: "boot 1: kexec-load", seconds: 1.5 },
    { name: "whole run (qemu start to verdict)", seconds: 70 },
  ]);
  assert.equal(result.value(1, "kexec-load-seconds"), "1.50");
  assert.equal(result.value(2, "kexec-load-seconds"), undefined);
});

Deno.test("scenario result: a failed check, a failed verdict, a missing boot or an error fail it", () => {
  const failedCheck = run.map((e) => e.name === "state" ? { ...e, value: "fail expected x" } : e);
  assert.equal(new ScenarioResult(scenario, failedCheck, "", "").passed, false);
  const failedVerdict = run.map((e) => e.kind === "verdict" ? { ...e, name: "fail" } : e);
  assert.equal(new ScenarioResult(scenario, failedVerdict, "", "").passed, false);
  assert.equal(new ScenarioResult({ ...scenario, boots: 3 }, run, "", "").passed, false);
  assert.equal(new ScenarioResult(scenario, run, "", "", new Error("timeout")).passed, false);
  assert.equal(new ScenarioResult(scenario, run.slice(0, -1), "", "").passed, false);
});

Deno.test("scenario result: the report names every failed check and the journal summary stops before 'everything'", () => {
  const failedCheck = run.map((e) => e.name === "state" ? { ...e, value: "fail expected x" } : e);
  const journal = "==== units: liveupdate* ====\nagent line\n==== everything ====\nnoise\n";
  const result = new ScenarioResult(scenario, failedCheck, "", journal);
  assert.match(result.report(), /FAILED boot 1 state: expected x/);
  assert.equal(result.journalSummary, "==== units: liveupdate* ====\nagent line\n");
});

import assert from "node:assert/strict";
import { ATTEMPT_SCHEMA, type AttemptRecord } from "../store/mod.ts";
import { renderMetrics } from "./prometheus.ts";
import { updateMetrics } from "./update_metrics.ts";
import { writeMetricsFile } from "./write.ts";
import { parseMetricsText } from "../../tests/tools/prometheus_text.ts";

function attempt(id: string, result?: AttemptRecord["status"]): AttemptRecord {
  return {
    schema: ATTEMPT_SCHEMA,
    id,
    agent_version: "0.1.0",
    backend: "rfc-v1",
    status: result ?? "kexec-issued",
    created: "2026-11-25T20:00:00.000Z",
    updated: "2026-11-25T20:05:00.000Z",
    kernels: {
      running: { release: "a", luo_version: "1.0" },
      target: { release: "b", luo_version: "1.1" },
    },
    compat: { verdict: "compatible", reason: "", override: false },
    plan: {},
    steps: [
      {
        name: "request-devices",
        status: "done",
        started: "2026-11-25T20:00:00.000Z",
        ended: "2026-11-25T20:00:00.250Z",
      },
      {
        name: "phase-prepare",
        status: "done",
        started: "2026-11-25T20:00:01.000Z",
        ended: "2026-11-25T20:00:03.500Z",
      },
      {
        name: "kernel-prepare",
        status: "failed",
        started: "2026-11-25T20:00:04.000Z",
        ended: "2026-11-25T20:00:04.100Z",
      },
    ],
    timings: { blackout_ms: 1500, kexec_to_finish_ms: 42_000 },
    overrides: [],
    notes: { devices: { selected: 3, requested: 3, preserved: 5, reclaimed: 4, unreclaimed: 1 } },
    ...(result
      ? { outcome: { result, message: "", exit_code: 0, at: "2026-11-25T20:05:00.000Z" } }
      : {}),
  };
}

/** The samples of a metrics text, read strictly. */
function parse(text: string): Map<string, number> {
  return parseMetricsText(text).samples;
}

Deno.test("metrics describe the newest attempt, its steps, devices and verdict", () => {
  const samples = parse(renderMetrics(updateMetrics({
    records: [attempt("b", "rolled-back"), attempt("a", "succeeded")],
    kernelState: "normal",
    fleetWaiting: { window: false, slot: true },
  })));
  assert.equal(samples.get("liveupdate_last_attempt_timestamp_seconds"), 1_795_636_800);
  assert.equal(samples.get('liveupdate_last_attempt_result{result="rolled-back"}'), 1);
  assert.equal(samples.get('liveupdate_last_attempt_result{result="succeeded"}'), 0);
  assert.equal(samples.get("liveupdate_attempt_in_progress"), 0);
  assert.equal(samples.get('liveupdate_attempts_recorded{result="succeeded"}'), 1);
  assert.equal(samples.get('liveupdate_attempts_recorded{result="rolled-back"}'), 1);
  assert.equal(samples.get('liveupdate_step_duration_seconds{step="request-devices"}'), 0.25);
  assert.equal(samples.get('liveupdate_step_duration_seconds{step="phase-prepare"}'), 2.5);
  assert.equal(samples.has('liveupdate_step_duration_seconds{step="kernel-prepare"}'), false);
  assert.equal(samples.get("liveupdate_blackout_seconds"), 1.5);
  assert.equal(samples.get("liveupdate_kexec_to_finish_seconds"), 42);
  assert.equal(samples.get('liveupdate_devices{state="unreclaimed"}'), 1);
  assert.equal(samples.get('liveupdate_compat_verdict{verdict="compatible"}'), 1);
  assert.equal(samples.get('liveupdate_kernel_state{state="normal"}'), 1);
  assert.equal(samples.get('liveupdate_fleet_waiting{for="slot"}'), 1);
});

Deno.test("an attempt in progress and an empty history render valid metrics", () => {
  const running = parse(renderMetrics(updateMetrics({ records: [attempt("c")] })));
  assert.equal(running.get("liveupdate_attempt_in_progress"), 1);
  assert.equal(running.has('liveupdate_last_attempt_result{result="succeeded"}'), false);
  const empty = parse(renderMetrics(updateMetrics({ records: [] })));
  assert.equal(empty.get("liveupdate_attempt_in_progress"), 0);
});

Deno.test("label values are escaped", () => {
  const text = renderMetrics([{
    name: "x",
    help: "h",
    type: "gauge",
    samples: [{ labels: { step: 'a"b\\c\nd' }, value: 1 }],
  }]);
  assert.match(text, /^x\{step="a\\"b\\\\c\\nd"\} 1$/m);
  assert.throws(() => renderMetrics([{ name: "bad-name", help: "", type: "gauge", samples: [] }]));
});

Deno.test("the metrics file is written atomically and readable by the collector", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/liveupdate.prom`;
    await writeMetricsFile(Deno, file, { records: [attempt("a", "succeeded")] });
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o644);
    assert.equal(
      parse(await Deno.readTextFile(file)).get(
        'liveupdate_last_attempt_result{result="succeeded"}',
      ),
      1,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["liveupdate.prom"]);
    await writeMetricsFile(Deno, "", { records: [] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the fleet state file becomes the fleet gauges", () => {
  const fleet = {
    version: 1 as const,
    pid: 42,
    host_id: "host-01",
    group: "rack-a",
    backend: "etcd",
    phase: "waiting-slot" as const,
    since: "2026-11-25T20:00:00.000Z",
    updated_at: "2026-11-25T20:01:00.000Z",
    wait_started_at: "2026-11-25T20:00:00.000Z",
    attempts: 7,
    window: { description: "any time", open: true },
  };
  const samples = parse(renderMetrics(updateMetrics({
    records: [],
    fleet: { state: fleet, now: new Date("2026-11-25T20:01:30.000Z") },
  })));
  const labels = 'group="rack-a",backend="etcd"';
  assert.equal(samples.get(`liveupdate_fleet_phase{${labels},phase="waiting-slot"}`), 1);
  assert.equal(samples.get(`liveupdate_fleet_phase{${labels},phase="holding"}`), 0);
  assert.equal(samples.get(`liveupdate_fleet_wait_seconds{${labels}}`), 90);
  assert.equal(samples.get(`liveupdate_fleet_attempts{${labels}}`), 7);
  assert.equal(samples.get(`liveupdate_fleet_slot_held{${labels}}`), 0);
  assert.equal(samples.get(`liveupdate_fleet_window_open{${labels}}`), 1);
  assert.equal(samples.get('liveupdate_fleet_waiting{for="slot"}'), 1);
  assert.equal(samples.get('liveupdate_fleet_waiting{for="window"}'), 0);
  const none = parse(renderMetrics(updateMetrics({ records: [] })));
  assert.equal([...none.keys()].some((key) => key.startsWith("liveupdate_fleet")), false);
});

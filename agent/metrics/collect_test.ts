import assert from "node:assert/strict";
import { parseMetricsText } from "../../tests/tools/prometheus_text.ts";
import { loadConfig } from "../config/mod.ts";
import type { FleetRuntimeState } from "../fleet/mod.ts";
import { AttemptStore } from "../store/mod.ts";
import { refreshMetricsFile } from "./collect.ts";

const now = new Date("2026-11-25T20:10:00Z");

function fleetState(phase: FleetRuntimeState["phase"]): FleetRuntimeState {
  return {
    version: 1,
    pid: 4242,
    host_id: "host-a",
    group: "rack-a07",
    backend: "etcd",
    phase,
    since: "2026-11-25T20:00:00.000Z",
    updated_at: "2026-11-25T20:05:00.000Z",
    wait_started_at: "2026-11-25T20:00:00.000Z",
    attempts: 7,
    window: { description: "sat, sun 01:00 for 5h", open: true },
  };
}

async function withRoot(
  fleet: string,
  run: (root: string, metrics: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-metrics-" });
  try {
    await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
    await Deno.mkdir(`${root}/run`);
    await Deno.writeTextFile(
      `${root}/etc/liveupdate/config.d/50-test.toml`,
      [
        "[paths]",
        `state_dir = "${root}/state"`,
        `runtime_dir = "${root}/run"`,
        "[metrics]",
        `file = "${root}/liveupdate.prom"`,
        "[fleet]",
        `backend = "${fleet}"`,
        'group = "rack-a07"',
        ...(fleet === "etcd" ? ["[fleet.etcd]", 'endpoints = ["http://127.0.0.1:2379"]'] : []),
        "",
      ].join("\n"),
    );
    await run(root, `${root}/liveupdate.prom`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("the metrics file carries the fleet gauges when a fleet backend is configured", async () => {
  await withRoot("etcd", async (root, file) => {
    await Deno.writeTextFile(`${root}/run/fleet.json`, JSON.stringify(fleetState("waiting-slot")));
    const { config } = await loadConfig(Deno, { root });
    const store = new AttemptStore(Deno, config.paths.state_dir);
    await refreshMetricsFile({ fs: Deno, config, store, now, kernelState: "normal" });
    const { samples, types } = parseMetricsText(await Deno.readTextFile(file));
    assert.equal(
      samples.get(`liveupdate_fleet_phase{group="rack-a07",backend="etcd",phase="waiting-slot"}`),
      1,
    );
    assert.equal(
      samples.get(`liveupdate_fleet_phase{group="rack-a07",backend="etcd",phase="holding"}`),
      0,
    );
    assert.equal(
      samples.get(`liveupdate_fleet_wait_seconds{group="rack-a07",backend="etcd"}`),
      600,
    );
    assert.equal(samples.get(`liveupdate_fleet_attempts{group="rack-a07",backend="etcd"}`), 7);
    assert.equal(samples.get(`liveupdate_fleet_slot_held{group="rack-a07",backend="etcd"}`), 0);
    assert.equal(samples.get(`liveupdate_fleet_window_open{group="rack-a07",backend="etcd"}`), 1);
    assert.equal(samples.get('liveupdate_fleet_waiting{for="slot"}'), 1);
    assert.equal(samples.get('liveupdate_kernel_state{state="normal"}'), 1);
    assert.equal(types.get("liveupdate_fleet_phase"), "gauge");
  });
});

Deno.test("without a fleet backend the file has no fleet gauges; a broken fleet file is ignored", async () => {
  await withRoot("none", async (root, file) => {
    await Deno.writeTextFile(`${root}/run/fleet.json`, JSON.stringify(fleetState("holding")));
    const { config } = await loadConfig(Deno, { root });
    await refreshMetricsFile({
      fs: Deno,
      config,
      store: new AttemptStore(Deno, `${root}/state`),
      now,
    });
    const { samples } = parseMetricsText(await Deno.readTextFile(file));
    assert.equal([...samples.keys()].some((key) => key.startsWith("liveupdate_fleet")), false);
    assert.equal(samples.get("liveupdate_attempt_in_progress"), 0);
  });
  await withRoot("etcd", async (root, file) => {
    await Deno.writeTextFile(`${root}/run/fleet.json`, "{ not json");
    const { config } = await loadConfig(Deno, { root });
    await refreshMetricsFile({
      fs: Deno,
      config,
      store: new AttemptStore(Deno, `${root}/state`),
      now,
    });
    const { samples } = parseMetricsText(await Deno.readTextFile(file));
    assert.equal([...samples.keys()].some((key) => key.startsWith("liveupdate_fleet")), false);
  });
});

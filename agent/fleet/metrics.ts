/**
 * The fleet layer's metrics, as neutral samples the metrics writer (node_exporter
 * textfile format) turns into lines: the phase (one gauge per phase, 1 for the
 * current), how long the current wait has lasted, how many tries it took, whether
 * a slot is held and whether the window is open.
 *
 * @module
 */

import { FLEET_PHASES, type FleetRuntimeState } from "./state_file.ts";

/** One sample of a gauge. */
export interface MetricSample {
  name: string;
  help: string;
  type: "gauge";
  labels: Readonly<Record<string, string>>;
  value: number;
}

const HOLDING = new Set(["holding", "persistent", "waiting-health", "kept"]);
const WAITING = new Set(["waiting-window", "waiting-slot"]);

/** The samples of `state` at `now`; none when there is no state. */
export function fleetMetricSamples(
  state: FleetRuntimeState | undefined,
  now: Date,
): MetricSample[] {
  if (state === undefined) return [];
  const base = { group: state.group, backend: state.backend };
  const samples: MetricSample[] = FLEET_PHASES.map((phase) => ({
    name: "liveupdate_fleet_phase",
    help: "What the fleet layer is doing (1 for the current phase).",
    type: "gauge",
    labels: { ...base, phase },
    value: state.phase === phase ? 1 : 0,
  }));
  const waitStart = state.wait_started_at ? Date.parse(state.wait_started_at) : NaN;
  samples.push(
    {
      name: "liveupdate_fleet_wait_seconds",
      help: "How long the current wait for a window and a slot has lasted.",
      type: "gauge",
      labels: base,
      value: WAITING.has(state.phase) && Number.isFinite(waitStart)
        ? Math.max(0, (now.getTime() - waitStart) / 1000)
        : 0,
    },
    {
      name: "liveupdate_fleet_attempts",
      help: "Tries for a slot in the current (or last) wait.",
      type: "gauge",
      labels: base,
      value: state.attempts,
    },
    {
      name: "liveupdate_fleet_slot_held",
      help: "1 while this host holds a fleet slot.",
      type: "gauge",
      labels: base,
      value: HOLDING.has(state.phase) ? 1 : 0,
    },
    {
      name: "liveupdate_fleet_window_open",
      help: "1 while the maintenance window is open.",
      type: "gauge",
      labels: base,
      value: state.window.open ? 1 : 0,
    },
  );
  return samples;
}

/**
 * The agent's metrics, derived from its records: the last attempt's result and
 * time, step and phase durations, the blackout, device counts and the
 * compatibility verdict; plus the kernel's state when known, and the fleet
 * layer's gauges (phase, wait, slot, window) when a fleet backend is configured.
 *
 * @module
 */

import { fleetMetricSamples, type FleetRuntimeState } from "../fleet/mod.ts";
import type { AttemptRecord } from "../store/mod.ts";
import type { Metric, Sample } from "./prometheus.ts";

const RESULTS = ["succeeded", "failed", "rolled-back", "refused", "cancelled"] as const;
const VERDICTS = ["compatible", "incompatible", "unknown", "invalid"] as const;
const DEVICE_COUNTS = ["selected", "requested", "preserved", "reclaimed", "unreclaimed"] as const;

/** What the metrics are computed from. */
export interface MetricsInput {
  /** Attempts, newest first. */
  records: readonly AttemptRecord[];
  /** The kernel's live-update state, if it could be read. */
  kernelState?: string;
  /** The fleet layer's waiting state, if a fleet backend is configured. */
  fleetWaiting?: { window: boolean; slot: boolean };
  /** The fleet layer's state file and the time to measure waits against. */
  fleet?: { state: FleetRuntimeState; now: Date };
}

function seconds(iso: string | undefined): number | undefined {
  if (!iso) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms / 1000;
}

function oneHot<T extends string>(label: string, values: readonly T[], current: string): Sample[] {
  return values.map((value) => ({ labels: { [label]: value }, value: value === current ? 1 : 0 }));
}

/** Computes every metric family from `input`. */
export function updateMetrics(input: MetricsInput): Metric[] {
  const last = input.records[0];
  const ended = input.records.find((record) => record.outcome);
  const metrics: Metric[] = [];
  const gauge = (name: string, help: string, samples: Sample[]) =>
    metrics.push({ name: `liveupdate_${name}`, help, type: "gauge", samples });

  gauge(
    "last_attempt_timestamp_seconds",
    "When the newest live-update attempt started (Unix time).",
    last && seconds(last.created) !== undefined ? [{ value: seconds(last.created)! }] : [],
  );
  gauge(
    "last_attempt_result",
    "Result of the newest ended attempt (1 for the result it had).",
    ended ? oneHot("result", RESULTS, ended.outcome!.result) : [],
  );
  gauge(
    "last_attempt_end_timestamp_seconds",
    "When the newest ended attempt ended (Unix time).",
    ended && seconds(ended.outcome!.at) !== undefined
      ? [{ value: seconds(ended.outcome!.at)! }]
      : [],
  );
  gauge(
    "attempt_in_progress",
    "1 while an attempt has started and not ended.",
    [{ value: last && !last.outcome ? 1 : 0 }],
  );
  const counts = new Map<string, number>(RESULTS.map((result) => [result, 0]));
  for (const record of input.records) {
    if (record.outcome) {
      counts.set(record.outcome.result, (counts.get(record.outcome.result) ?? 0) + 1);
    }
  }
  gauge(
    "attempts_recorded",
    "Attempts in the kept history, by result.",
    [...counts].map(([result, value]) => ({ labels: { result }, value })),
  );
  const source = ended ?? last;
  if (source) {
    const steps: Sample[] = [];
    for (const step of source.steps) {
      const start = seconds(step.started);
      const end = seconds(step.ended);
      if (start === undefined || end === undefined || step.status !== "done") continue;
      steps.push({ labels: { step: step.name }, value: Math.max(0, end - start) });
    }
    gauge("step_duration_seconds", "Duration of each step of the newest attempt.", steps);
    const timings = source.timings;
    const ms = (key: string) =>
      typeof timings[key] === "number" ? [{ value: (timings[key] as number) / 1000 }] : [];
    gauge(
      "blackout_seconds",
      "From the kexec being issued to the new kernel's boot.",
      ms("blackout_ms"),
    );
    gauge(
      "kexec_to_finish_seconds",
      "From the kexec being issued to the update being finished.",
      ms("kexec_to_finish_ms"),
    );
    const devices = (source.notes.devices ?? {}) as Record<string, unknown>;
    gauge(
      "devices",
      "Devices of the newest attempt, by what happened to them.",
      DEVICE_COUNTS.filter((key) => typeof devices[key] === "number").map((key) => ({
        labels: { state: key },
        value: devices[key] as number,
      })),
    );
    gauge(
      "compat_verdict",
      "Compatibility verdict of the newest attempt's kernels (1 for the verdict it had).",
      oneHot("verdict", VERDICTS, source.compat.verdict),
    );
    gauge("compat_override", "1 when the newest attempt overrode a refused verdict.", [{
      value: source.compat.override ? 1 : 0,
    }]);
  }
  if (input.kernelState) {
    gauge(
      "kernel_state",
      "The kernel's live-update state (1 for the current state).",
      oneHot("state", ["normal", "prepared", "updated"], input.kernelState),
    );
  }
  const waiting = input.fleetWaiting ??
    (input.fleet
      ? {
        window: input.fleet.state.phase === "waiting-window",
        slot: input.fleet.state.phase === "waiting-slot",
      }
      : undefined);
  if (waiting) {
    gauge("fleet_waiting", "1 while waiting for a maintenance window or a fleet slot.", [
      { labels: { for: "window" }, value: waiting.window ? 1 : 0 },
      { labels: { for: "slot" }, value: waiting.slot ? 1 : 0 },
    ]);
  }
  if (input.fleet) {
    const families = new Map<string, Metric>();
    for (const sample of fleetMetricSamples(input.fleet.state, input.fleet.now)) {
      let family = families.get(sample.name);
      if (!family) {
        family = { name: sample.name, help: sample.help, type: sample.type, samples: [] };
        families.set(sample.name, family);
        metrics.push(family);
      }
      family.samples.push({ labels: sample.labels, value: sample.value });
    }
  }
  return metrics;
}

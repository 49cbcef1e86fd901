// deno-lint-ignore-file no-console -- a benchmark script that prints its measurements
/**
 * Benchmark: stopping and starting 100 units (simple, oneshot, notify; half of them
 * ordered after another) through the agent's systemd layer, against
 *   - one `systemctl` call per direction (all 100 units named at once), and
 *   - one `systemctl` call per unit (100 calls per direction, one after the other),
 * on a private systemd manager (tests/systemd/harness.ts). Not a test: it prints the
 * medians and ratios for the README's "Performance" section.
 *
 * The agent runs two phases per round ("prepare" stops the 100 units, "cancel" starts
 * them), each with its preflight (one ListUnitsByNames call) and its phase target, over
 * one bus connection opened beforehand (as in the agent, which connects once per run).
 * systemctl runs inside the manager's namespace (nsenter) and talks to the manager's
 * private socket, as `systemctl` does on a host; the cost of nsenter alone is printed.
 *
 * Usage (root): deno run -A tests/bench/systemd_phase_bench.ts [--rounds=N] [--units=N]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { captureOutput, realClock } from "../../agent/host/mod.ts";
import { createLogger, streamSink } from "../../agent/log/mod.ts";
import { dbusNextConnector } from "../../agent/systemd/dbus_next.ts";
import { phaseTarget, runPhase, SystemdManager } from "../../agent/systemd/mod.ts";
import { startPrivateSystemd } from "../systemd/harness.ts";
import { phaseTargetFiles, phaseTestUnits } from "../systemd/test_units.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "7" }, units: { type: "string", default: "100" } },
});
const rounds = Number(values.rounds);
const count = Number(values.units);

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const units = phaseTestUnits(count, "bench");
await using systemd = await startPrivateSystemd({
  units: { ...await phaseTargetFiles(), ...units.files },
});
const log = createLogger({
  sink: streamSink(captureOutput(), "text"),
  clock: realClock,
  level: "warning",
});
const connectStarted = performance.now();
await using manager = await SystemdManager.connect(dbusNextConnector, systemd.busAddress);
const connectMs = performance.now() - connectStarted;
const context = { manager, log, clock: realClock };

async function systemctl(args: string[]): Promise<void> {
  const result = await systemd.systemctl(args);
  if (result.code !== 0) throw new Error(`systemctl ${args[0]}: ${result.stderr}`);
}

async function assertAll(state: string): Promise<void> {
  const result = await systemd.systemctl(["is-active", ...units.names]);
  const states = new Set(result.stdout.trim().split("\n"));
  if (states.size !== 1 || !states.has(state)) {
    throw new Error(`expected every unit ${state}, got ${[...states].join(", ")}`);
  }
}

type Way = "agent" | "systemctl, one call per direction" | "systemctl, one call per unit";
const ways: Record<Way, { stop: () => Promise<void>; start: () => Promise<void> }> = {
  "agent": {
    stop: async () => {
      await runPhase(context, {
        phase: "prepare",
        stop: units.names,
        start: [],
        target: phaseTarget("prepare"),
        timeoutMs: 120_000,
      });
    },
    start: async () => {
      await runPhase(context, {
        phase: "cancel",
        stop: [],
        start: units.names,
        target: phaseTarget("cancel"),
        timeoutMs: 120_000,
      });
    },
  },
  "systemctl, one call per direction": {
    stop: () => systemctl(["stop", ...units.names]),
    start: () => systemctl(["start", ...units.names]),
  },
  "systemctl, one call per unit": {
    stop: async () => {
      for (const name of units.names) await systemctl(["stop", name]);
    },
    start: async () => {
      for (const name of units.names) await systemctl(["start", name]);
    },
  },
};

const samples = new Map<Way, { stop: number[]; start: number[] }>();
for (const way of Object.keys(ways) as Way[]) samples.set(way, { stop: [], start: [] });

// Warm-up: every unit started once, so the first timed start is not a first load.
await systemctl(["start", ...units.names]);
const nsenter: number[] = [];
for (let round = 0; round < rounds; round++) {
  // Rotate the order so drift on a shared machine does not favour one way.
  const order = (Object.keys(ways) as Way[]).map((_, i, all) => all[(i + round) % all.length]!);
  for (const way of order) {
    const t0 = performance.now();
    await ways[way].stop();
    const t1 = performance.now();
    await assertAll("inactive");
    const t2 = performance.now();
    await ways[way].start();
    const t3 = performance.now();
    await assertAll("active");
    samples.get(way)!.stop.push(t1 - t0);
    samples.get(way)!.start.push(t3 - t2);
  }
  const t = performance.now();
  await systemd.systemctl(["--version"]);
  nsenter.push(performance.now() - t);
}

const base = samples.get("systemctl, one call per direction")!;
const baseTotal = median(base.stop) + median(base.start);
console.log(`${count} units, ${rounds} rounds, medians in ms (systemd ${await manager.version()})`);
console.log(`agent bus connection (once per agent run): ${connectMs.toFixed(1)} ms`);
console.log(`nsenter + systemctl --version alone: ${median(nsenter).toFixed(1)} ms`);
console.log("| way | stop | start | stop+start | vs one call per direction |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const [way, { stop, start }] of samples) {
  const total = median(stop) + median(start);
  console.log(
    `| ${way} | ${median(stop).toFixed(0)} | ${median(start).toFixed(0)} | ${total.toFixed(0)} | ` +
      `${(total / baseTotal).toFixed(2)}× |`,
  );
}

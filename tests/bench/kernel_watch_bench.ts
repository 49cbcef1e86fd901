// deno-lint-ignore-file no-console -- a benchmark script that prints its results
/**
 * State-change detection latency of the agent's state watcher against the
 * simulated kernel (real FUSE poll(2)): the poll path (wake-ups on), the timeout
 * path (wake-ups off, RFC v1's bug: only the bounded re-read notices), and a
 * naive loop that reads the state once a second. For each, ≥ 200 changes
 * (prepare ↔ cancel) at random moments; latency = from just before the write
 * that changes the state to the moment the detector reports the new state.
 *
 *     deno run -A tests/bench/kernel_watch_bench.ts [--changes=N] [--json]
 *
 * Needs root (FUSE), as the integration tier. Not a test: it asserts nothing
 * about speed; the README's "Performance" section quotes its output.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Libc, libcKernelFs, openLibc } from "../../agent/host/mod.ts";
import {
  openKernel as openBackend,
  parseState,
  requireStateMachine,
  type StateMachine,
} from "../../agent/kernel/mod.ts";
import { startSim } from "../sim/harness.ts";
import { generateTree } from "../sim/tree.ts";

const args = parseArgs({
  args: Deno.args,
  options: { changes: { type: "string", default: "200" }, json: { type: "boolean" } },
});
const CHANGES = Number(args.values.changes);

/** Something that notices state changes and reports them. */
interface Detector {
  name: string;
  start(report: (state: string) => void): void;
  stop(): Promise<void>;
}

/** The agent's RFC v1 backend on a simulator's sysfs root. */
async function openKernel(
  sysfs: string,
  libc: () => Libc,
  watchInterval: number,
): Promise<StateMachine> {
  const kernel = await openBackend({
    fs: libcKernelFs(libc()),
    libc,
    sysfs,
    debugfs: `${sysfs}/nonexistent`,
    device: `${sysfs}/nonexistent`,
    watchInterval,
  }, "rfc-v1");
  return requireStateMachine(kernel);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

interface Result {
  name: string;
  changes: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * Drives `changes` state changes through `machine` and measures how long
 * `detector` takes to report each. `gap()` is the pause before each change.
 */
async function measure(
  machine: StateMachine,
  detector: Detector,
  gap: () => number,
): Promise<Result> {
  let waiting: { state: string; resolve: (at: number) => void } | undefined;
  detector.start((state) => {
    if (waiting && state === waiting.state) {
      const { resolve } = waiting;
      waiting = undefined;
      resolve(performance.now());
    }
  });
  await sleep(50); // let the detector take its first reading
  const latencies: number[] = [];
  let current = await machine.state();
  for (let i = 0; i < CHANGES; i++) {
    await sleep(gap());
    const next = current === "normal" ? "prepared" : "normal";
    const seen = new Promise<number>((resolve) => waiting = { state: next, resolve });
    const started = performance.now();
    if (next === "prepared") await machine.prepare();
    else await machine.cancel();
    latencies.push((await seen) - started);
    current = next;
  }
  await detector.stop();
  latencies.sort((a, b) => a - b);
  return {
    name: detector.name,
    changes: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1]!,
    mean: latencies.reduce((a, b) => a + b, 0) / latencies.length,
  };
}

function watcher(name: string, machine: StateMachine, interval: number): Detector {
  const controller = new AbortController();
  let loop: Promise<void> | undefined;
  return {
    name,
    start(report) {
      loop = (async () => {
        for await (const { state } of machine.watch({ signal: controller.signal, interval })) {
          report(state);
        }
      })();
    },
    async stop() {
      controller.abort();
      await loop;
    },
  };
}

function naiveLoop(file: string, period: number): Detector {
  let stopped = false;
  let loop: Promise<void> | undefined;
  return {
    name: `naive loop: read every ${period / 1000} s`,
    start(report) {
      loop = (async () => {
        let last: string | undefined;
        while (!stopped) {
          const state = parseState(await Deno.readTextFile(file), file);
          if (state !== last) report(state);
          last = state;
          await sleep(period);
        }
      })();
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

const tree = generateTree({ devices: 20, marked: 0 });
using libc = openLibc();

// 1. The poll path alone, so nothing else competes for the CPU.
let poll: Result;
{
  await using sim = await startSim({ tree, notify: true });
  const machine = await openKernel(sim.root, () => libc, 1000);
  poll = await measure(
    machine,
    watcher("poll path (wake-ups on, interval 1 s)", machine, 1000),
    () => 2 + Math.random() * 8,
  );
}

// 2. The sleep-bound detectors side by side, each on its own simulator; changes
//    at random phases of the interval.
const slow = await Promise.all(
  [
    {
      notify: false,
      make: (m: StateMachine) => watcher("timeout path (wake-ups off, interval 1 s)", m, 1000),
      gap: 1000,
    },
    {
      notify: false,
      make: (m: StateMachine) => watcher("timeout path (wake-ups off, interval 100 ms)", m, 100),
      gap: 100,
    },
    { notify: true, make: (_m: StateMachine, file: string) => naiveLoop(file, 1000), gap: 1000 },
  ].map(async ({ notify, make, gap }) => {
    await using sim = await startSim({ tree, notify });
    const machine = await openKernel(sim.root, () => libc, 1000);
    return await measure(
      machine,
      make(machine, sim.path("kernel/liveupdate/state")),
      () => Math.random() * gap,
    );
  }),
);

const results = [poll, ...slow];
if (args.values.json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  const ms = (value: number) => value < 10 ? value.toFixed(2) : value.toFixed(0);
  console.log("| detector | changes | p50 (ms) | p99 (ms) | max (ms) |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const r of results) {
    console.log(`| ${r.name} | ${r.changes} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} |`);
  }
}

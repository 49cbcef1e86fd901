// deno-lint-ignore-file no-console -- a benchmark that prints its numbers
/**
 * Measures the simulated LUO kernel: mount time and memory for a large tree,
 * write/read round trips through FUSE, and poll(2) wake-up latency.
 *
 *     deno run -A tests/bench/sim_bench.ts [--devices=100000] [--rounds=2000]
 *
 * Numbers vary with the machine's load; nothing here asserts a time.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { cString, openLibc } from "../../agent/host/libc.ts";
import { startSim } from "../sim/harness.ts";
import { generateTree, writeSimTree } from "../sim/tree.ts";
import { PolledFile } from "../sim/_conformance.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    devices: { type: "string", default: "100000" },
    rounds: { type: "string", default: "2000" },
  },
});
const devices = Number(values.devices);
const rounds = Number(values.rounds);

function percentiles(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  const us = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
  return `p50 ${us(at(0.5))}, p90 ${us(at(0.9))}, p99 ${us(at(0.99))}, max ${us(sorted.at(-1)!)}`;
}

const dir = await Deno.makeTempDir({ prefix: "luo-sim-bench-" });
using libc = openLibc();
try {
  const tree = generateTree({ devices, marked: 0 });
  await writeSimTree(tree, `${dir}/tree.txt`);
  const size = (await Deno.stat(`${dir}/tree.txt`)).size;
  const t0 = performance.now();
  await using sim = await startSim({ tree: `${dir}/tree.txt` });
  const started = performance.now() - t0;
  const status = await sim.status();
  console.log(`tree: ${devices} devices, data file ${(size / 1e6).toFixed(1)} MB`);
  console.log(`mount: ${started.toFixed(0)} ms from spawn to mounted (load ${sim.loadMs} ms)`);
  console.log(`memory: daemon RSS ${(status.rssKib / 1024).toFixed(1)} MiB`);

  const t1 = performance.now();
  let listed = 0;
  for await (const _ of Deno.readDir(sim.path("bus/pci/devices"))) listed++;
  console.log(
    `readDir bus/pci/devices: ${listed} entries in ${(performance.now() - t1).toFixed(0)} ms`,
  );

  const device = tree.devices.find((d) => d.driver === "vfio-pci")!;
  const requested = sim.device(device.path, "liveupdate/requested");
  const fd = libc.symbols.open(cString(requested), 2, /* O_RDWR */ 0);
  if (fd < 0) throw new Error(`open ${requested}: ${libc.errnoName()}`);
  try {
    const one = new TextEncoder().encode("0");
    const buffer = new Uint8Array(16);
    const writes: number[] = [];
    const reads: number[] = [];
    const both: number[] = [];
    for (let i = 0; i < rounds; i++) {
      let t = performance.now();
      libc.symbols.write(fd, one, 1n);
      writes.push(performance.now() - t);
      t = performance.now();
      libc.symbols.pread(fd, buffer, 16n, 0n);
      reads.push(performance.now() - t);
      t = performance.now();
      libc.symbols.write(fd, one, 1n);
      libc.symbols.pread(fd, buffer, 16n, 0n);
      both.push(performance.now() - t);
    }
    console.log(`write(2) to requested (open fd): ${percentiles(writes)}`);
    console.log(`pread(2) of requested (open fd): ${percentiles(reads)}`);
    console.log(`write + read round trip: ${percentiles(both)}`);
  } finally {
    libc.symbols.close(fd);
  }
  const opens: number[] = [];
  for (let i = 0; i < Math.min(rounds, 500); i++) {
    const t = performance.now();
    await Deno.writeTextFile(requested, "0");
    opens.push(performance.now() - t);
  }
  console.log(`Deno.writeTextFile (path walk + open + write + close): ${percentiles(opens)}`);

  // Poll wake-up: from the start of the state-changing write to the poller's return.
  const prepare = libc.symbols.open(cString(sim.path("kernel/liveupdate/prepare")), 1, 0);
  using state = new PolledFile(libc, sim.path("kernel/liveupdate/state"));
  const wakeups: number[] = [];
  let delivered = 0;
  const pollRounds = Math.min(rounds, 200);
  try {
    for (let i = 0; i < pollRounds; i++) {
      state.read();
      const polling = state.poll(10_000);
      await sim.pollersWaiting(1);
      const value = new TextEncoder().encode(i % 2 === 0 ? "1" : "0");
      const t = performance.now();
      libc.symbols.write(prepare, value, 1n);
      const revents = await polling;
      wakeups.push(performance.now() - t);
      if (revents & 0x2) delivered++;
    }
  } finally {
    libc.symbols.close(prepare);
  }
  console.log(`poll wake-up (write start → poll returns): ${percentiles(wakeups)}`);
  console.log(`wake-ups delivered: ${delivered}/${pollRounds}`);
} finally {
  await Deno.remove(dir, { recursive: true });
}

// deno-lint-ignore-file no-console -- a benchmark that prints its numbers
/**
 * The device selection at 1,000 / 10,000 / 100,000 devices (a tenth of them
 * tagged), on a plain-file sysfs tree on tmpfs and on the simulated kernel
 * (FUSE), side by side with what an operator would otherwise write:
 *
 *     grep -rlx 'Q:liveupdate' /run/udev/data | while read -r f; do … echo 1 > …; done
 *
 * Every measurement is a fresh process (wall time from spawn to exit; peak
 * memory is the process's VmHWM, for the pipeline GNU time's largest process).
 * Runs are interleaved round by round so load from other work on the machine
 * hits all of them alike; the table shows the median and the best round.
 *
 *     deno run -A tests/bench/devices_bench.ts [--sizes=1000,10000,100000] [--rounds=5]
 *         [--no-sim]
 *
 * The plain tree is written where production's sysfs and udev database are, /sys
 * and /run/udev, onto tmpfs mounted in a private mount namespace (the benchmark
 * runs itself again under `unshare -m`): path lookups cost what they cost on a
 * host. Needs root. Nothing here asserts a time.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { RUNTIME_FLAGS } from "../../agent/build/runtime_flags.ts";
import { startSim } from "../sim/harness.ts";
import { generateTree, writePlainSysfs, writeUdevDb } from "../sim/tree.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "1000,10000,100000" },
    rounds: { type: "string", default: "5" },
    "no-sim": { type: "boolean", default: false },
  },
});
if (Deno.env.get("LIVEUPDATE_DEVICES_BENCH_NS") !== "1") {
  // Run again inside a private mount namespace (tmpfs on /sys and /run there only).
  const self = new URL(import.meta.url).pathname;
  const status = await new Deno.Command("unshare", {
    args: ["-m", "--propagation", "private", Deno.execPath(), "run", "-A", self, ...Deno.args],
    env: { LIVEUPDATE_DEVICES_BENCH_NS: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  Deno.exit(status.code);
}
const sizes = values.sizes!.split(",").map(Number);
const rounds = Number(values.rounds);
const RUN = new URL("./_devices_run.ts", import.meta.url).pathname;
const TIME = "/usr/bin/time";
const hasTime = await Deno.stat(TIME).then(() => true, () => false);
const decoder = new TextDecoder();

interface Sample {
  wallMs: number;
  /** User + system CPU time (less affected by other work on the machine than wall time). */
  cpuMs: number | undefined;
  peakMb: number | undefined;
  changed?: number;
}

/** Runs a command under GNU time when there is one; wall time from the parent. */
async function measure(
  command: string,
  args: string[],
): Promise<{ sample: Sample; stdout: string }> {
  const program = hasTime ? TIME : command;
  const programArgs = hasTime ? ["-f", "%M %U %S", command, ...args] : args;
  const start = performance.now();
  const out = await new Deno.Command(program, {
    args: programArgs,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wallMs = performance.now() - start;
  const stdout = decoder.decode(out.stdout);
  const stderr = decoder.decode(out.stderr);
  if (out.code !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${stdout}${stderr}`);
  const [maxKb, user, system] = hasTime
    ? stderr.trim().split("\n").at(-1)!.split(" ").map(Number)
    : [NaN, NaN, NaN];
  const cpu = (user! + system!) * 1000;
  return {
    sample: {
      wallMs,
      cpuMs: Number.isFinite(cpu) ? cpu : undefined,
      peakMb: Number.isFinite(maxKb) ? maxKb! / 1024 : undefined,
    },
    stdout,
  };
}

async function agentRun(mode: string, sysfs: string, udev: string, state: string): Promise<Sample> {
  // The agent's own modes run with the agent's V8 flags (agent/build/runtime_flags.ts),
  // as the compiled binary does; the Deno loops an operator would write run without.
  const agent = mode === "agent" || mode === "undo";
  const { sample, stdout } = await measure(Deno.execPath(), [
    "run",
    "-A",
    ...(agent ? RUNTIME_FLAGS : []),
    RUN,
    mode,
    sysfs,
    udev,
    state,
  ]);
  const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
  return { ...sample, peakMb: result.peakKb / 1024, changed: result.changed };
}

/** The operator's pipeline: grep the data files, then an echo loop over PCI ids. */
async function shell(sysfs: string, udev: string): Promise<Sample> {
  const script = 'grep -rlx "Q:liveupdate" "$2/data" | while read -r f; do ' +
    'id=${f##*/}; echo 1 > "$1/bus/pci/devices/${id#+pci:}/liveupdate/requested"; done';
  return (await measure("bash", ["-c", script, "bash", sysfs, udev])).sample;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const best = (xs: number[]) => Math.min(...xs);

type Row = { setup: string; devices: number; what: string; samples: Sample[] };
const rows: Row[] = [];

function record(setup: string, devices: number, what: string, sample: Sample) {
  let row = rows.find((r) => r.setup === setup && r.devices === devices && r.what === what);
  if (!row) rows.push(row = { setup, devices, what, samples: [] });
  row.samples.push(sample);
}

async function roundsOn(
  setup: string,
  devices: number,
  sysfs: string,
  udev: string,
  state: string,
) {
  // Warm up (Deno's module cache, the page cache).
  await agentRun("reset", sysfs, udev, state);
  await agentRun("empty", sysfs, udev, state);
  await agentRun("agent", sysfs, udev, state);
  await agentRun("undo", sysfs, udev, state);
  for (let round = 0; round < rounds; round++) {
    record(
      setup,
      devices,
      "Deno start (nothing done)",
      await agentRun("empty", sysfs, udev, state),
    );
    record(setup, devices, "shell pipeline (grep + echo loop)", await shell(sysfs, udev));
    await agentRun("reset", sysfs, udev, state);
    record(
      setup,
      devices,
      "Deno: tag index only, write (no check)",
      await agentRun("index", sysfs, udev, state),
    );
    await agentRun("reset", sysfs, udev, state);
    record(
      setup,
      devices,
      "Deno: every data file, write",
      await agentRun("naive", sysfs, udev, state),
    );
    await agentRun("reset", sysfs, udev, state);
    // "reset" removed the selection cache too: a first run as on a host where the agent
    // never ran (or the udev database was rebuilt since).
    record(
      setup,
      devices,
      "agent: select + reconcile + verify (no cache)",
      await agentRun("agent", sysfs, udev, state),
    );
    record(
      setup,
      devices,
      "agent: second run, nothing to change",
      await agentRun("agent", sysfs, udev, state),
    );
    // Flags cleared, selection cache kept: a first run where the agent ran before.
    await agentRun("reset-flags", sysfs, udev, state);
    record(
      setup,
      devices,
      "agent: select + reconcile + verify (cache from an earlier run)",
      await agentRun("agent", sysfs, udev, state),
    );
    record(
      setup,
      devices,
      "agent: undo (clear its own)",
      await agentRun("undo", sysfs, udev, state),
    );
  }
}

/** Mounts a fresh tmpfs at `path` (in this process's private mount namespace). */
async function mountTmpfs(path: string): Promise<void> {
  const out = await new Deno.Command("mount", { args: ["-t", "tmpfs", "tmpfs", path] }).output();
  if (out.code !== 0) throw new Error(`mount tmpfs ${path}: ${decoder.decode(out.stderr)}`);
}

for (const devices of sizes) {
  const marked = Math.round(devices / 10);
  const tree = generateTree({ devices, marked });
  // The plain tree lives where production's does: a tmpfs on /sys and on /run, in
  // this private mount namespace, so every path (and its lookup cost) is the real one.
  await mountTmpfs("/sys");
  await mountTmpfs("/run");
  const t = performance.now();
  await writePlainSysfs(tree, "/sys");
  await writeUdevDb(tree, "/run/udev");
  console.error(
    `${devices} devices (${marked} tagged) written in ${
      ((performance.now() - t) / 1000).toFixed(0)
    } s`,
  );
  await roundsOn("tmpfs", devices, "/sys", "/run/udev", "/run/liveupdate-state");
  await new Deno.Command("umount", { args: ["/sys"] }).output();
  if (!values["no-sim"]) {
    await using sim = await startSim({ tree });
    await roundsOn("simulator", devices, sim.root, "/run/udev", "/run/liveupdate-state-sim");
  }
  await new Deno.Command("umount", { args: ["/run"] }).output();
}

const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
console.log(`\nrounds: ${rounds}, load average at the end: ${load}\n`);
console.log(
  "| setup | devices | what | wall median (s) | wall best (s) | CPU median (s) | peak memory (MB) |",
);
console.log("| --- | ---: | --- | ---: | ---: | ---: | ---: |");
const fixed = (xs: number[]) => (xs.length ? median(xs).toFixed(3) : "-");
for (const row of rows) {
  const walls = row.samples.map((s) => s.wallMs / 1000);
  const cpus = row.samples.map((s) => s.cpuMs).filter((c): c is number => c !== undefined);
  const peaks = row.samples.map((s) => s.peakMb).filter((p): p is number => p !== undefined);
  console.log(
    `| ${row.setup} | ${row.devices.toLocaleString("en")} | ${row.what} | ${
      median(walls).toFixed(3)
    } | ` +
      `${best(walls).toFixed(3)} | ${fixed(cpus.map((c) => c / 1000))} | ` +
      `${peaks.length ? median(peaks).toFixed(0) : "-"} |`,
  );
}

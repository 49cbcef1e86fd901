// deno-lint-ignore-file no-console -- a developer tool that prints for people
/**
 * The simulated LUO kernel by hand (and for the rehearsal):
 *
 *     deno run -A tests/sim/cli.ts start [--tree=FILE | --devices=N [--marked=M]]
 *         [--notify=on|off] [--disabled] [--subsystems=LIST] [--verbose]
 *     deno run -A tests/sim/cli.ts ctl ROOT COMMAND [ARGS...]
 *     deno run -A tests/sim/cli.ts tree --devices=N [--marked=M] [--unsupported-port-every=K] --out=FILE
 *
 * `start` mounts a simulator and stays in the foreground until SIGINT or
 * SIGTERM (then it unmounts and checks nothing is left). Its first line on
 * standard output is JSON: {"root": the sysfs root to use, "pid", "daemonPid",
 * "mountpoint"}. `ctl` sends one control command (see tests/sim/control.c or
 * the README) to the simulator whose sysfs root is ROOT and prints the reply.
 * `tree` writes a generated tree in the simulator's data-file format.
 *
 * Needs root.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { simControl, SimControlError, startSim } from "./harness.ts";
import { generateTree, type SimTree, writeSimTree } from "./tree.ts";

const USAGE = `usage:
  cli.ts start [--tree=FILE | --devices=N [--marked=M]] [--notify=on|off] [--disabled]
               [--subsystems=NAME:before|with|after,...] [--verbose]
  cli.ts ctl ROOT COMMAND [ARGS...]
  cli.ts tree --devices=N [--marked=M] [--unsupported-port-every=K] --out=FILE`;

function fail(message: string): never {
  console.error(`cli.ts: ${message}\n${USAGE}`);
  Deno.exit(2);
}

function count(value: string | undefined, name: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) fail(`--${name} is required`);
    return fallback;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`--${name}=${value} is not a whole number`);
  return n;
}

function generated(values: Record<string, string | boolean | undefined>): SimTree {
  const devices = count(values.devices as string | undefined, "devices", 200);
  if (devices < 1) fail("--devices must be at least 1");
  return generateTree({
    devices,
    marked: count(values.marked as string | undefined, "marked", 0),
    unsupportedPortEvery: count(
      values["unsupported-port-every"] as string | undefined,
      "unsupported-port-every",
      0,
    ),
  });
}

async function start(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      tree: { type: "string" },
      devices: { type: "string" },
      marked: { type: "string" },
      "unsupported-port-every": { type: "string" },
      notify: { type: "string", default: "on" },
      disabled: { type: "boolean", default: false },
      subsystems: { type: "string" },
      verbose: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.notify !== "on" && values.notify !== "off") fail("--notify is on or off");
  if (values.tree && values.devices) fail("give --tree or --devices, not both");
  const sim = await startSim({
    tree: values.tree ?? generated(values),
    notify: values.notify === "on",
    enabled: !values.disabled,
    subsystems: values.subsystems?.split(","),
    verbose: values.verbose,
    stderr: "inherit",
  });
  console.log(JSON.stringify({
    root: sim.root,
    pid: sim.pid,
    daemonPid: sim.daemonPid,
    mountpoint: sim.mountpoint,
  }));
  console.error(`luo-sim: sysfs root ${sim.root}`);
  console.error(`luo-sim: control with: deno run -A tests/sim/cli.ts ctl ${sim.root} COMMAND`);
  console.error("luo-sim: Ctrl-C (or SIGTERM) stops it");
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => stop = resolve);
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, stop);
  const why = await Promise.race([stopped.then(() => "signal"), sim.exited.then(() => "exit")]);
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(signal, stop);
  try {
    await sim.stop();
  } catch (error) {
    console.error(`luo-sim: ${(error as Error).message}`);
    return 1;
  }
  if (why === "exit") {
    console.error("luo-sim: the simulator exited by itself");
    return 1;
  }
  return 0;
}

async function ctl(args: string[]): Promise<number> {
  const [root, ...words] = args;
  if (!root || !words.length) fail("ctl needs ROOT and a COMMAND");
  try {
    console.log(JSON.stringify(await simControl(root, words.join(" "))));
    return 0;
  } catch (error) {
    if (error instanceof SimControlError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
}

async function tree(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      devices: { type: "string" },
      marked: { type: "string" },
      "unsupported-port-every": { type: "string" },
      out: { type: "string" },
    },
    strict: true,
  });
  if (!values.out) fail("--out is required");
  if (values.devices === undefined) fail("--devices is required");
  await writeSimTree(generated(values), values.out);
  return 0;
}

if (import.meta.main) {
  const [command, ...rest] = Deno.args;
  const commands: Record<string, (args: string[]) => Promise<number>> = { start, ctl, tree };
  const run = command ? commands[command] : undefined;
  if (!run) fail(command ? `unknown command "${command}"` : "a command is required");
  Deno.exit(await run(rest));
}

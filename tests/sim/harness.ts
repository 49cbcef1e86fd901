/**
 * The simulated LUO kernel for tests: `startSim()` builds `luo-sim` from
 * tests/sim/*.c if needed (tests/sim/build.sh) and starts it through the agent's
 * own launcher (`agent/rehearsal/simulator.ts`, which the rehearsal uses too and
 * which documents how it runs), re-exported here.
 *
 * ```ts
 * await using sim = await startSim({ tree: generateTree({ devices: 50, marked: 2 }) });
 * await Deno.writeTextFile(`${sim.root}/kernel/liveupdate/prepare`, "1");
 * await sim.kexec(); // → state "updated", preserved devices still preserved
 * ```
 *
 * Needs root, `--allow-run` (unshare, bash), `--allow-read` and `--allow-write`.
 *
 * @module
 */

import { type Sim, type SimOptions, startSimulator } from "../../agent/rehearsal/simulator.ts";

export * from "../../agent/rehearsal/simulator.ts";

const REPO = new URL("../../", import.meta.url).pathname;
/** The simulator binary built by tests/sim/build.sh. */
export const SIM_BINARY = `${REPO}.build/sim/luo-sim`;

let built: Promise<string> | undefined;

/** Builds the simulator if needed (once per process). Needs `--allow-run=bash`. */
export function ensureSimBuilt(): Promise<string> {
  built ??= (async () => {
    const { code, stderr, stdout } = await new Deno.Command("bash", {
      args: [`${REPO}tests/sim/build.sh`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      built = undefined;
      const decoder = new TextDecoder();
      throw new Error(
        `Building the simulator failed (tests/sim/build.sh, exit ${code}):\n` +
          decoder.decode(stdout) + decoder.decode(stderr),
      );
    }
    return SIM_BINARY;
  })();
  return built;
}

/** Builds the simulator if needed and starts it for `options.tree`. */
export async function startSim(options: SimOptions): Promise<Sim> {
  return startSimulator({ ...options, binary: await ensureSimBuilt() });
}

/**
 * VM scenarios: what the guest runs on each boot and what the host checks
 * afterwards. A scenario is a folder of guest files plus a description:
 *
 *     tests/e2e/scenarios/<name>/boot1, boot2, …   bash, run on boot N with the
 *                                                helpers of guest/lib.sh
 *     tests/e2e/scenarios/<name>/setup            optional, once, after the files
 *                                                are installed (e.g. enable units)
 *     tests/e2e/scenarios/<name>/root/…           files copied into the guest root
 *                                                (units, config drop-ins, rules)
 *
 * The files travel to the guest as a tar archive on a second disk; the guest's
 * driver (guest/run) installs them on the first boot. Each boot script ends with
 * `reboot_via kexec|reboot` to continue on the next boot, or returns to end the
 * scenario: the guest then writes its verdict (every `check` passed) and the
 * journal of all boots, and powers off.
 *
 * @module
 */

import { printBlock, progress } from "./_log.ts";
import { exec } from "./_exec.ts";
import type { GuestEvent } from "./channel.ts";
import type { DiskImage } from "./disk.ts";
import { Vm } from "./qemu.ts";

/** A VM scenario. */
export interface Scenario {
  name: string;
  /** One line: what it proves. */
  summary: string;
  /** The folder with `boot<N>` scripts, optional `setup` and `root/`. */
  guest: string;
  /** How many boots the scenario takes (the last one writes the verdict). */
  boots: number;
  /** Kernel arguments of the first boot (after the base command line). */
  append?: readonly string[];
  /**
   * Set while the scenario cannot pass yet (it needs agent behaviour that does
   * not exist): the reason. Its test is registered as ignored.
   */
  pending?: string;
  /** Host-side checks once the guest's verdict passed; throw to fail. */
  verify?: (result: ScenarioResult) => void;
}

/** One timing of a run. */
export interface Timing {
  name: string;
  seconds: number;
}

/** What a scenario run produced. */
export class ScenarioResult {
  constructor(
    readonly scenario: Scenario,
    readonly events: readonly GuestEvent[],
    readonly console: string,
    readonly journal: string,
    readonly error?: Error,
  ) {}

  /** The guest's verdict, if it got that far. */
  get verdict(): GuestEvent | undefined {
    return this.events.find((event) => event.kind === "verdict");
  }

  /** The boot records, first boot first (name: "kexec" or "cold", value: the command line). */
  get boots(): GuestEvent[] {
    return this.events.filter((event) => event.kind === "boot");
  }

  /** A value the guest recorded on boot `boot`. */
  value(boot: number, name: string): string | undefined {
    return this.events.find((e) => e.kind === "value" && e.boot === boot && e.name === name)
      ?.value;
  }

  /** The checks that failed. */
  get failures(): GuestEvent[] {
    return this.events.filter((event) => event.kind === "check" && event.value !== "ok");
  }

  /** Whether the guest passed every check and reached its verdict in the expected boot. */
  get passed(): boolean {
    return this.error === undefined && this.verdict?.name === "pass" &&
      this.boots.length === this.scenario.boots && this.failures.length === 0;
  }

  /**
   * Timings: the first boot (qemu start to the boot being complete), every
   * reboot (the guest asking systemd to reboot or kexec, to the next boot
   * being complete), the guest's own measurements (values `*-seconds`), and
   * the whole run.
   */
  get timings(): Timing[] {
    const out: Timing[] = [];
    const boots = this.boots;
    if (boots[0]) {
      out.push({ name: "boot 1 (qemu start to boot complete)", seconds: boots[0].at / 1000 });
    }
    for (const reboot of this.events.filter((event) => event.kind === "reboot")) {
      const next = boots.find((boot) => boot.boot === reboot.boot + 1);
      if (!next) continue;
      out.push({
        name: `boot ${next.boot} (${reboot.name} requested to boot complete, came up ${next.name})`,
        seconds: (next.at - reboot.at) / 1000,
      });
    }
    for (const event of this.events) {
      if (event.kind === "value" && event.name.endsWith("-seconds")) {
        out.push({
          name: `boot ${event.boot}: ${event.name.slice(0, -8)}`,
          seconds: Number(event.value),
        });
      }
    }
    const verdict = this.verdict;
    if (verdict) {
      out.push({ name: "whole run (qemu start to verdict)", seconds: verdict.at / 1000 });
    }
    return out;
  }

  /** The journal sections for the agent's and the scenario's units and the module (not "everything"). */
  get journalSummary(): string {
    const cut = this.journal.indexOf("==== everything ====");
    return cut < 0 ? this.journal : this.journal.slice(0, cut);
  }

  /** A readable account of the run, for a failure. */
  report(): string {
    const lines = [`scenario ${this.scenario.name}: ${this.scenario.summary}`];
    if (this.error) lines.push(`error: ${this.error.message}`);
    lines.push(
      `verdict: ${this.verdict ? `${this.verdict.name} ${this.verdict.value}` : "none"}`,
      `boots: ${this.boots.length} of ${this.scenario.boots}`,
    );
    for (const failure of this.failures) {
      lines.push(
        `FAILED boot ${failure.boot} ${failure.name}: ${failure.value.replace(/^fail /, "")}`,
      );
    }
    lines.push("records:");
    for (const event of this.events) {
      const value = event.value.length > 300 ? `${event.value.slice(0, 300)}…` : event.value;
      lines.push(
        `  ${
          (event.at / 1000).toFixed(1).padStart(6)
        }s ${event.kind} ${event.boot} ${event.name} ${value}`,
      );
    }
    return lines.join("\n");
  }
}

/** The scenario failed; its message holds the report. */
export class ScenarioError extends Error {
  override name = "ScenarioError";
}

function scale(): number {
  return Number(Deno.env.get("LIVEUPDATE_VM_TIMEOUT_SCALE") ?? "1") || 1;
}

/** The tar archive of the scenario's guest files (what guest/run installs). */
async function buildPayload(scenario: Scenario, dir: string): Promise<string> {
  const staging = `${dir}/payload`;
  const home = `${staging}/usr/lib/luo-e2e/scenario`;
  await Deno.mkdir(home, { recursive: true });
  await Deno.writeTextFile(`${home}/name`, `${scenario.name}\n`);
  for await (const entry of Deno.readDir(scenario.guest)) {
    const source = `${scenario.guest}/${entry.name}`;
    if (entry.isDirectory && entry.name === "root") {
      await exec(["cp", "-a", `${source}/.`, `${staging}/`]);
    } else if (entry.isFile && /^(boot\d+|setup)$/.test(entry.name)) {
      await Deno.copyFile(source, `${home}/${entry.name}`);
      await Deno.chmod(`${home}/${entry.name}`, 0o755);
    }
  }
  const top: string[] = [];
  for await (const entry of Deno.readDir(staging)) top.push(entry.name);
  const payload = `${dir}/payload.tar`;
  await exec([
    "tar",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "-cf",
    payload,
    "-C",
    staging,
    ...top.sort(),
  ]);
  return payload;
}

async function readText(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

/**
 * Boots the guest and runs `scenario` to its verdict (or to a failure: qemu
 * exits, the kernel panics, or no record arrives for too long), then stops
 * qemu. Never throws: a failure is in `result.error` and `result.passed`. The run's
 * files go to a temporary directory, removed afterwards unless
 * LIVEUPDATE_VM_KEEP=1. Needs root and --allow-all.
 */
export async function runScenario(image: DiskImage, scenario: Scenario): Promise<ScenarioResult> {
  const dir = await Deno.makeTempDir({
    dir: "/var/tmp",
    prefix: `liveupdate-vm-e2e-${scenario.name}-`,
  });
  // Generous: the machine is shared and emulation is slow. No assertion depends on time.
  const stallMs = 8 * 60_000 * scale();
  let vm: Vm | undefined;
  let error: Error | undefined;
  try {
    vm = await Vm.start({
      image,
      dir,
      append: scenario.append,
      payload: await buildPayload(scenario, dir),
    });
    progress(`${scenario.name}: qemu started (files in ${dir})`);
    for (;;) {
      const event = await vm.next("a record from the guest", stallMs);
      if (event.kind === "boot") {
        progress(
          `${scenario.name}: boot ${event.boot} complete (${event.name}) at ${
            (event.at / 1000).toFixed(1)
          }s`,
        );
      } else if (event.kind === "reboot") {
        progress(`${scenario.name}: boot ${event.boot} asks for ${event.name}`);
      } else if (event.kind === "check" && event.value !== "ok") {
        progress(`${scenario.name}: boot ${event.boot} check ${event.name} FAILED: ${event.value}`);
      } else if (event.kind === "verdict") {
        progress(`${scenario.name}: verdict ${event.name} at ${(event.at / 1000).toFixed(1)}s`);
        break;
      }
    }
    if (!await vm.waitForExit(120_000 * scale())) {
      progress(`${scenario.name}: the guest did not power off; killing qemu`);
    }
  } catch (caught) {
    // The VM failing (VmError) or the harness: either way the run's files are read and removed.
    error = caught instanceof Error ? caught : new Error(String(caught));
  } finally {
    await vm?.stop();
  }
  const result = new ScenarioResult(
    scenario,
    vm?.events ?? [],
    await readText(`${dir}/console.log`),
    await readText(`${dir}/journal.log`),
    error,
  );
  if (Deno.env.get("LIVEUPDATE_VM_KEEP") === "1") {
    progress(`${scenario.name}: kept ${dir}`);
  } else {
    await Deno.remove(dir, { recursive: true });
  }
  return result;
}

/** Prints the timings of `result` (the tier's report of what it measured). */
export function printTimings(result: ScenarioResult): void {
  for (const timing of result.timings) {
    progress(`${result.scenario.name}: ${timing.name}: ${timing.seconds.toFixed(1)}s`);
  }
  for (const boot of result.boots) {
    const startup = result.value(boot.boot, "startup");
    if (startup) progress(`${result.scenario.name}: boot ${boot.boot}: ${startup.trim()}`);
  }
}

/**
 * Fails (throws {@link ScenarioError}) unless the guest passed and the
 * scenario's host-side checks hold; prints the records, the journal of the
 * agent's and the scenario's units and the end of the console first.
 */
export function assertScenario(result: ScenarioResult): void {
  let problem: string | undefined;
  if (!result.passed) {
    problem = result.error?.message ?? `verdict ${result.verdict?.name ?? "missing"}, ` +
        `${result.failures.length} failed check(s), ${result.boots.length} of ${result.scenario.boots} boots`;
  } else {
    try {
      result.scenario.verify?.(result);
    } catch (caught) {
      problem = `host-side check: ${caught instanceof Error ? caught.message : String(caught)}`;
    }
  }
  if (problem === undefined) return;
  printBlock(`${result.scenario.name}: report`, result.report());
  printBlock(
    `${result.scenario.name}: journal (agent units, scenario units, module)`,
    result.journalSummary || "(none: the guest never got to write it)",
  );
  printBlock(
    `${result.scenario.name}: console (last 120 lines)`,
    result.console.split("\n").slice(-120).join("\n"),
  );
  throw new ScenarioError(`Scenario ${result.scenario.name} failed: ${problem}`);
}

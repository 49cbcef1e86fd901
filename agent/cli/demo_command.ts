/**
 * `liveupdate-agent demo`: a full live update rehearsed on the built-in simulated
 * kernel and a private systemd manager (agent/rehearsal/), shown step by step.
 * The README's first command (`deno task demo`) builds the simulator and runs this.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import { captureOutput, type Output } from "../host/mod.ts";
import { wantsColor } from "../log/mod.ts";
import { shippedPhaseTargets } from "../rehearsal/phase_targets.ts";
import { createProgress } from "../rehearsal/progress.ts";
import { type AgentLogLine, rehearse } from "../rehearsal/rehearse.ts";
import { findSimulator } from "../rehearsal/simulator.ts";
import type { Command } from "./command.ts";

/** An output that hands every complete line of the agent's JSON log to `line`. */
function jsonLogOutput(line: (record: AgentLogLine) => void): Output {
  let partial = "";
  return {
    write(text) {
      partial += text;
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const raw of lines) {
        if (!raw.trim()) continue;
        try {
          line(JSON.parse(raw) as AgentLogLine);
        } catch {
          line({ level: "info", message: raw });
        }
      }
    },
    isTerminal: () => false,
  };
}

function columns(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 100;
  }
}

function indent(text: string): string {
  return text.trimEnd().split("\n").map((line) => (line ? `  ${line}` : "")).join("\n");
}

/** `liveupdate-agent demo`. */
export const demoCommand: Command = {
  name: "demo",
  summary: "Rehearse a full live update on the built-in simulated kernel (as root).",
  description: [
    "Sets up a sample hypervisor host on a simulated LUO kernel (luo-sim, a FUSE file system",
    "in a private mount namespace) and a private systemd manager (its own namespaces, bus",
    "and cgroup): two VMs on passthrough devices, tagged for preservation; a checkpoint",
    "service hooked into phase prepare and a restore service hooked into phase updated.",
    "Then runs this agent's own commands against it as the units would: check, prepare",
    "(devices requested, kernel loaded, phases, kernel prepared, kexec issued: a simulated",
    "reboot), and finish in the new kernel, where the restore reclaims the devices. Every",
    "step is shown as it happens; at the end, status and the attempt record. Nothing on",
    "this machine's kernel, services or /etc changes; everything is removed afterwards",
    "unless --keep. Needs root, and the simulator built (deno task demo does it).",
  ].join("\n"),
  options: {
    json: {
      type: "boolean",
      description: "Print the attempt record as JSON on stdout (progress goes to stderr).",
    },
    keep: {
      type: "boolean",
      description: "Keep the rehearsal's directory (config root, records, metrics, logs).",
    },
    simulator: {
      type: "string",
      value: "PATH",
      description: "The luo-sim binary (default: .build/sim/luo-sim of a source checkout, " +
        "else /usr/libexec/liveupdate-agent/luo-sim).",
    },
  },
  async run(context, args) {
    const { host } = context;
    if (!context.cli) throw new AgentError("The demo needs the command line (an internal error).");
    if (Deno.permissions.querySync({ name: "run" }).state !== "granted") {
      throw new AgentError(
        "The rehearsal starts processes (the simulator, a systemd manager) that this agent's " +
          "service permissions do not allow. Run it from a source checkout: 'deno task demo'.",
        { exitCode: ExitCode.Unsupported },
      );
    }
    if (Deno.uid() !== 0) {
      throw new AgentError(
        "The rehearsal needs root (a FUSE mount and namespaces of its own); run it with sudo.",
        { exitCode: ExitCode.Unsupported },
      );
    }
    const simulator = findSimulator(args.values.simulator as string | undefined);
    const phaseTargets = await shippedPhaseTargets();
    const json = args.values.json === true;
    const out = json ? host.stderr : host.stdout;
    const progress = createProgress({
      output: out,
      now: () => host.clock.monotonic(),
      color: wantsColor(host.env, out),
      columns,
    });
    const cli = context.cli;
    const runAgent = async (argv: string[], log: (line: AgentLogLine) => void) => {
      const stdout = captureOutput();
      const code = await cli([...argv, "--log-format=json"], {
        ...host,
        stdout,
        stderr: jsonLogOutput(log),
      });
      return { code, stdout: stdout.text() };
    };

    // Ctrl-C or SIGTERM: tear the machine down (once it exists) and leave with 130.
    let stopStage: (() => Promise<void>) | undefined;
    let interruptedEarly = false;
    const leave = (stop: () => Promise<void>) => stop().finally(() => Deno.exit(130));
    const interrupted = () => {
      progress.close();
      out.write("Interrupted: stopping the rehearsal's machine.\n");
      if (stopStage) leave(stopStage);
      else interruptedEarly = true;
    };
    Deno.addSignalListener("SIGINT", interrupted);
    Deno.addSignalListener("SIGTERM", interrupted);
    out.write(
      "liveupdate-agent demo: a live update rehearsed on a simulated kernel and a private " +
        "systemd manager\n(nothing on this machine's kernel or services changes)\n",
    );
    progress.section("The machine", "a sample hypervisor host");
    try {
      const result = await rehearse({
        simulator,
        phaseTargets,
        runAgent,
        progress,
        now: () => host.clock.monotonic(),
        keep: args.values.keep === true,
        started: (stop) => {
          stopStage = stop;
          if (interruptedEarly) leave(stop);
        },
      });
      progress.close();
      out.write(`\n$ liveupdate-agent status\n${indent(result.status)}\n`);
      out.write(`\n$ liveupdate-agent history ${result.record.id}\n${indent(result.history)}\n`);
      if (result.kept) {
        out.write(
          `\nKept the rehearsal's directory ${result.kept}: the record is ` +
            `${result.kept}/state/attempts/${result.record.id}.json, the metrics ` +
            `${result.kept}/metrics/liveupdate.prom, the config root ${result.kept}/root.\n`,
        );
      }
      if (json) host.stdout.write(JSON.stringify(result.record, null, 2) + "\n");
      return ExitCode.Success;
    } catch (error) {
      progress.close();
      throw error;
    } finally {
      Deno.removeSignalListener("SIGINT", interrupted);
      Deno.removeSignalListener("SIGTERM", interrupted);
    }
  },
};

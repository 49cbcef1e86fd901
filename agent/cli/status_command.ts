/**
 * `liveupdate-agent status`: what the agent can tell about the host's live-update
 * readiness.
 *
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import { type FleetRuntimeState, readFleetState } from "../fleet/mod.ts";
import type { Command } from "./command.ts";
import { attemptsText, type StatusAttempts, statusAttempts } from "./status_attempts.ts";
import { gatherStatus, type StatusKernelSide, type StatusReport } from "./status_report.ts";

export { STATUS_JSON_VERSION } from "./status_report.ts";

const LABEL = 11;
const line = (label: string, text: string) => `${label.padStart(LABEL)}: ${text}`;
const more = (text: string) => `${" ".repeat(LABEL + 2)}${text}`;

function versionText(side: StatusKernelSide): string {
  if (side.compatible) {
    const { kho, luo, fileHandlers } = side.compatible;
    return `handover formats ${[luo, kho, ...fileHandlers].filter((x) => x !== null).join(", ")}`;
  }
  if (side.version === null) return `LUO ABI unknown — ${side.problem ?? "no metadata"}`;
  const from = side.versionSource === "config"
    ? "set in the configuration"
    : `from ${side.metadataFile}`;
  return `LUO ABI ${side.version} (${from})`;
}

function renderText(report: StatusReport): string {
  const lines = [`liveupdate-agent ${report.agent.version}`];
  const { sources } = report.config;
  lines.push(line("Config", sources.length ? sources.join(", ") : "defaults (no drop-in files)"));

  const { kernel } = report;
  if (kernel.available) {
    const extra = kernel.features?.extraFiles.length
      ? ` (also has: ${kernel.features.extraFiles.join(", ")})`
      : "";
    lines.push(line("Kernel", `${kernel.backend} at ${kernel.location}${extra}`));
    if (kernel.features?.stateMachine) {
      lines.push(line("State", kernel.state ?? `unreadable — ${kernel.stateError}`));
    }
    if (kernel.features && !kernel.features.devices) {
      lines.push(line("Devices", "this kernel preserves no devices"));
    }
    if (kernel.sessions) {
      const { broker } = kernel.sessions;
      lines.push(line(
        "Sessions",
        broker.running
          ? `broker on ${broker.socket}: ${broker.phase}, ${broker.subscribers.length} ` +
            `subscriber(s), ${broker.incoming.length} from the previous kernel`
          : `no broker — ${broker.problem}`,
      ));
    }
  } else {
    if (kernel.probes.length > 1 && !kernel.probes.some((probe) => probe.usable)) {
      lines.push(line("Kernel", "unavailable — no usable live-update interface"));
      for (const probe of kernel.probes) lines.push(more(`${probe.backend}: ${probe.summary}`));
    } else {
      lines.push(line("Kernel", `unavailable — ${kernel.reason}`));
    }
  }

  const { handover } = report;
  lines.push(line(
    "Handover",
    handover.status === "present"
      ? handover.version === null && handover.detail
        ? `from a live update: ${handover.detail} (${handover.file})`
        : `from a live update, previous kernel's LUO ABI ${handover.version ?? "not stated"} ` +
          `(${handover.file})`
      : handover.status === "absent"
      ? `none — ${handover.detail}`
      : `${handover.status} — ${handover.detail}`,
  ));

  const { running, target, verdict } = report.compat;
  lines.push(line("Running", `${running.release ?? "unknown release"}: ${versionText(running)}`));
  if (running.note) lines.push(more(running.note));
  if (target.image === null && target.versionSource === null) {
    lines.push(line("Target", "none configured (target.kernel)"));
  } else {
    const release = target.release === null
      ? "unknown release"
      : `${target.release} (from its ${target.releaseSource})`;
    lines.push(
      line("Target", `${target.image ?? "(no image)"}: ${release}: ${versionText(target)}`),
    );
    if (target.note) lines.push(more(target.note));
  }
  lines.push(line("Compat", verdict.sentence));
  return lines.join("\n") + "\n";
}

/** Reports the agent, its configuration and the kernel's live-update state. */
export const statusCommand: Command = {
  name: "status",
  summary: "Show the kernel's live-update support and state, and the last attempts.",
  description: [
    "Reads what it can and changes nothing. The kernel section says whether the running",
    "kernel offers live update (and through which interface, or what is missing), its",
    "state, what the previous kernel handed over, and the compatibility of the configured",
    "target kernel. Exits 0 whenever it could report, whatever it found.",
  ].join("\n"),
  options: {
    json: { type: "boolean", description: "Print JSON (versioned schema, see the README)." },
  },
  async run(context, args) {
    const { config } = context.loaded;
    const fleetState = config.fleet.backend === "none"
      ? undefined
      : await readFleetState(context.host.fs, config.paths.runtime_dir).catch((error) => {
        context.log.warning((error as Error).message);
        return undefined;
      });
    const report = {
      ...await gatherStatus({
        fs: context.host.fs,
        platform: context.platform,
        loaded: context.loaded,
        log: context.log,
      }),
      fleet: {
        backend: config.fleet.backend,
        group: config.fleet.group,
        state: fleetState ?? null,
      },
      attempts: await statusAttempts(context.host.fs, config),
    };
    const { stdout } = context.host;
    if (args.values.json) stdout.write(JSON.stringify(report, null, 2) + "\n");
    else {
      stdout.write(
        renderText(report) +
          line("Fleet", fleetLine(report.fleet.backend, report.fleet.group, fleetState)) + "\n" +
          attemptsLines(report.attempts),
      );
    }
    return ExitCode.Success;
  },
};

function attemptsLines(section: StatusAttempts): string {
  const { label, lines } = attemptsText(section);
  return [line("Attempts", label), ...lines.map(more)].join("\n") + "\n";
}

function fleetLine(
  backend: string,
  group: string,
  state: FleetRuntimeState | undefined,
): string {
  if (backend === "none") return "none (this host updates without fleet slots)";
  if (state === undefined) return `${backend}, group ${group}: no fleet activity in this boot`;
  const last = state.last_decision ? ` — ${state.last_decision.message}` : "";
  return `${backend}, group ${group}: ${state.phase} since ${state.since} ` +
    `(${state.attempts} tries)${last}`;
}

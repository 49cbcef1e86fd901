/**
 * `liveupdate-agent status`: what the agent is doing and what it can tell about
 * the host's live-update readiness, laid out as `systemctl status` lays out a
 * unit: a header with a bullet, aligned `Key: value` lines, the last attempts.
 *
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import type { FleetRuntimeState } from "../fleet/mod.ts";
import { ago, historyLine, keyValues, shortTime } from "./attempts_view.ts";
import type { Command } from "./command.ts";
import {
  type ActiveState,
  gatherStatus,
  type StatusKernelSide,
  type StatusReport,
} from "./status_report.ts";

export { STATUS_JSON_VERSION } from "./status_report.ts";

const BULLETS: Record<ActiveState, { mark: string; color: string }> = {
  idle: { mark: "●", color: "\x1b[32m" },
  updating: { mark: "●", color: "\x1b[33m" },
  failed: { mark: "×", color: "\x1b[31m" },
  unavailable: { mark: "○", color: "" },
};

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

function fleetLine(fleet: StatusReport["fleet"]): string {
  const { backend, group, state } = fleet;
  if (backend === "none") return "none (this host updates without fleet slots)";
  if (state === null) return `${backend}, group ${group}: no fleet activity in this boot`;
  return fleetStateLine(backend, group, state);
}

function fleetStateLine(backend: string, group: string, state: FleetRuntimeState): string {
  const last = state.last_decision ? ` — ${state.last_decision.message}` : "";
  return `${backend}, group ${group}: ${state.phase} since ${state.since} ` +
    `(${state.attempts} tries)${last}`;
}

/** The report as text. `color` paints the bullet; `now` makes "5min ago". */
export function renderStatus(report: StatusReport, now: Date, color = false): string {
  const bullet = BULLETS[report.summary.state];
  const mark = color && bullet.color ? `${bullet.color}${bullet.mark}\x1b[0m` : bullet.mark;
  const { summary } = report;
  const since = summary.since
    ? ` since ${shortTime(summary.since)}; ${ago(summary.since, now)}`
    : "";
  const rows: [string, string][] = [
    ["Active", `${summary.state}${since}\n${summary.sentence}`],
  ];
  const { sources } = report.config;
  rows.push(["Config", sources.length ? sources.join("\n") : "defaults (no drop-in files)"]);

  const { kernel } = report;
  if (kernel.available) {
    const extra = kernel.features?.extraFiles.length
      ? ` (also has: ${kernel.features.extraFiles.join(", ")})`
      : "";
    rows.push(["Kernel", `${kernel.backend} at ${kernel.location}${extra}`]);
    if (kernel.features?.stateMachine) {
      rows.push(["State", kernel.state ?? `unreadable — ${kernel.stateError}`]);
    }
    if (kernel.features && !kernel.features.devices) {
      rows.push(["Devices", "this kernel preserves no devices"]);
    }
    if (kernel.sessions) {
      const { broker } = kernel.sessions;
      rows.push([
        "Sessions",
        broker.running
          ? `broker on ${broker.socket}: ${broker.phase}, ${broker.subscribers.length} ` +
            `subscriber(s), ${broker.incoming.length} from the previous kernel`
          : `no broker — ${broker.problem}`,
      ]);
    }
  } else if (kernel.probes.length > 1 && !kernel.probes.some((probe) => probe.usable)) {
    rows.push([
      "Kernel",
      ["unavailable — no usable live-update interface"]
        .concat(kernel.probes.map((probe) => `${probe.backend}: ${probe.summary}`)).join("\n"),
    ]);
  } else {
    rows.push(["Kernel", `unavailable — ${kernel.reason}`]);
  }

  const { handover } = report;
  rows.push([
    "Handover",
    handover.status === "present"
      ? handover.version === null && handover.detail
        ? `from a live update: ${handover.detail} (${handover.file})`
        : `from a live update, previous kernel's LUO ABI ${handover.version ?? "not stated"} ` +
          `(${handover.file})`
      : handover.status === "absent"
      ? `none — ${handover.detail}`
      : `${handover.status} — ${handover.detail}`,
  ]);

  const { running, target, verdict } = report.compat;
  rows.push([
    "Running",
    `${running.release ?? "unknown release"}: ${versionText(running)}` +
    (running.note ? `\n${running.note}` : ""),
  ]);
  if (target.image === null && target.versionSource === null) {
    rows.push(["Target", "none configured (target.kernel)"]);
  } else {
    const release = target.release === null
      ? "unknown release"
      : `${target.release} (from its ${target.releaseSource})`;
    rows.push([
      "Target",
      `${target.image ?? "(no image)"}: ${release}: ${versionText(target)}` +
      (target.note ? `\n${target.note}` : ""),
    ]);
  }
  rows.push(["Compat", verdict.sentence]);
  rows.push(["Fleet", fleetLine(report.fleet)]);

  const { attempts } = report;
  rows.push([
    "Attempts",
    attempts.problem
      ? `cannot be listed — ${attempts.problem}`
      : `${attempts.total || "none"} recorded in ${attempts.dir}` +
        (attempts.unreadable.length ? `, ${attempts.unreadable.length} unusable` : ""),
  ]);

  const lines = [
    `${mark} liveupdate-agent ${report.agent.version} - live update host agent`,
    ...keyValues(rows),
  ];
  if (attempts.recent.length) {
    lines.push(
      "",
      `Last attempts (newest first; 'liveupdate-agent history' lists all ${attempts.total}):`,
      ...attempts.recent.map((summary) => `  ${historyLine(summary)}`),
    );
  }
  for (const bad of attempts.unreadable) {
    lines.push(`  unusable record ${bad.path}: ${bad.problem}`);
  }
  return lines.join("\n") + "\n";
}

/** Reports what the agent is doing, the kernel's live-update state and the last attempts. */
export const statusCommand: Command = {
  name: "status",
  summary: "Show what the agent is doing, the kernel's live-update state and the last attempts.",
  description: [
    "Reads what it can and changes nothing. The first line says what the agent is doing",
    "(idle, updating, failed, unavailable); then whether the running kernel offers live",
    "update (and through which interface, or what is missing), its state, what the previous",
    "kernel handed over, the compatibility of the configured target kernel, the fleet, and",
    "the last attempts. Exits 0 whenever it could report, whatever it found.",
  ].join("\n"),
  options: {
    json: { type: "boolean", description: "Print JSON (versioned schema, see the README)." },
  },
  async run(context, args) {
    const report = await gatherStatus({
      fs: context.host.fs,
      platform: context.platform,
      loaded: context.loaded,
      log: context.log,
    });
    const { stdout } = context.host;
    if (args.values.json) stdout.write(JSON.stringify(report, null, 2) + "\n");
    else {
      const color = stdout.isTerminal() && !context.host.env.get("NO_COLOR");
      stdout.write(renderStatus(report, context.host.clock.now(), color));
    }
    return ExitCode.Success;
  },
};

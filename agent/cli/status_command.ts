/**
 * `liveupdate-agent status`: what the agent can tell about the host's live-update
 * readiness.
 *
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import { readFleetState } from "../fleet/mod.ts";
import { VERSION } from "../version.ts";
import type { Command } from "./command.ts";

/** Version of the `status --json` document. */
export const STATUS_JSON_VERSION = 1;

/** Reports the agent, its configuration and the kernel's live-update state. */
export const statusCommand: Command = {
  name: "status",
  summary: "Show the kernel's live-update support and state, and the last attempts.",
  description: [
    "Reads what it can and changes nothing. The kernel section says whether the running",
    "kernel offers live update, its state, and the compatibility of the configured target.",
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
      version: STATUS_JSON_VERSION,
      agent: { version: VERSION },
      config: { sources: context.loaded.sources },
      kernel: {
        available: false,
        reason:
          "This build of the agent has no kernel layer yet; it cannot read live-update state.",
      },
      fleet: {
        backend: config.fleet.backend,
        group: config.fleet.group,
        state: fleetState ?? null,
      },
    };
    const { stdout } = context.host;
    if (args.values.json) {
      stdout.write(JSON.stringify(report, null, 2) + "\n");
    } else {
      stdout.write(
        [
          `liveupdate-agent ${VERSION}`,
          `     Config: ${report.config.sources.length} file(s)` +
          (report.config.sources.length ? `: ${report.config.sources.join(", ")}` : " (defaults)"),
          `     Kernel: unavailable — ${report.kernel.reason}`,
          `      Fleet: ${fleetLine(report.fleet.backend, report.fleet.group, fleetState)}`,
          "",
        ].join("\n"),
      );
    }
    return ExitCode.Success;
  },
};

function fleetLine(
  backend: string,
  group: string,
  state: Awaited<ReturnType<typeof readFleetState>>,
): string {
  if (backend === "none") return "none (this host updates without fleet slots)";
  if (state === undefined) return `${backend}, group ${group}: no fleet activity in this boot`;
  const last = state.last_decision ? ` — ${state.last_decision.message}` : "";
  return `${backend}, group ${group}: ${state.phase} since ${state.since} ` +
    `(${state.attempts} tries)${last}`;
}

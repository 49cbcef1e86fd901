/**
 * `liveupdate-agent status`: what the agent can tell about the host's live-update
 * readiness.
 *
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import { mainlineProbe } from "../kernel/mainline/backend.ts";
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
    const config = context.loaded.config;
    const mainline = await mainlineProbe({
      fs: context.host.fs,
      device: config.kernel.device,
      debugfs: config.paths.debugfs,
      proc: config.paths.proc,
    });
    const report = {
      version: STATUS_JSON_VERSION,
      agent: { version: VERSION },
      config: { sources: context.loaded.sources },
      kernel: mainline.usable
        ? {
          available: true,
          backend: "mainline",
          location: mainline.location,
          summary: mainline.summary,
          problems: mainline.problems,
          mainline: mainline.details,
        }
        : {
          available: false,
          reason: "This build of the agent drives only the mainline interface so far: " +
            mainline.summary,
          missing: mainline.missing,
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
          "kernel" in report && report.kernel.available
            ? `     Kernel: ${"summary" in report.kernel ? report.kernel.summary : ""}`
            : `     Kernel: unavailable — ${"reason" in report.kernel ? report.kernel.reason : ""}`,
          "",
        ].join("\n"),
      );
    }
    return ExitCode.Success;
  },
};

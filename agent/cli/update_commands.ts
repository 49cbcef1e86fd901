/**
 * The commands that change the host: `prepare`, `finish`, `cancel`, `recover`;
 * and `check`, the dry run of prepare.
 *
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import { keyValues } from "./attempts_view.ts";
import { refreshAllMetrics } from "./metrics_refresh.ts";
import type { AttemptRecord } from "../store/mod.ts";
import {
  preflight,
  type PreflightResult,
  type Resolution,
  resolveUpdate,
  runCancel,
  runPrepare,
  type UpdateContext,
} from "../update/mod.ts";
import type { Command, CommandContext } from "./command.ts";
import { FLEET_OPTIONS, fleetOverride } from "./fleet_options.ts";
import { createUpdateContext, type FleetUse } from "./update_context.ts";

const JSON_OPTION = {
  json: { type: "boolean", description: "Print the result as JSON." },
} as const;

function printRecord(context: CommandContext, record: AttemptRecord, json: boolean): void {
  if (json) context.host.stdout.write(JSON.stringify(record, null, 2) + "\n");
}

function printResolution(context: CommandContext, resolution: Resolution, json: boolean): void {
  if (json) {
    context.host.stdout.write(
      JSON.stringify(
        {
          version: 1,
          action: resolution.action,
          message: resolution.message,
          exit_code: resolution.exitCode,
          attempt: resolution.record ?? null,
        },
        null,
        2,
      ) + "\n",
    );
  } else {
    context.log.info(resolution.message);
  }
}

/**
 * Runs `run` with the update context; with `metrics`, the metrics file is
 * rewritten afterwards (whatever the outcome).
 */
async function withUpdate<T>(
  context: CommandContext,
  run: (update: UpdateContext) => Promise<T>,
  options: { metrics?: boolean; fleet?: FleetUse } = {},
): Promise<T> {
  const { update, close } = await createUpdateContext(context, {
    fleet: options.fleet ?? "optional",
  });
  try {
    return await run(update);
  } finally {
    if (options.metrics) await refreshAllMetrics(update);
    await close();
  }
}

/** `prepare`: a live update up to the kexec (what liveupdate-prepare.service runs). */
export const prepareCommand: Command = {
  name: "prepare",
  summary: "Run a live update: preflight, prepare, and kexec into the target kernel.",
  description: [
    "Preflight (no side effects), then journaled steps: request the devices the udev rules",
    'choose, load the target kernel, run phase "prepare", prepare the kernel, run phase',
    '"reboot", and issue the kexec. Any failure before the kexec rolls everything back',
    "(exit 6). SIGTERM before the kexec rolls back too. This is what",
    "'systemctl start liveupdate-prepare' runs.",
    "",
    "With a fleet (fleet.backend), it first waits for the maintenance window (unless --now)",
    "and a fleet slot, and checks again before changing anything (see the README's \"Fleet",
    'rollouts"): exit 8 when fleet.wait_timeout runs out, 5 while this host keeps a slot',
    "from a failed update.",
  ].join("\n"),
  options: {
    ...JSON_OPTION,
    ...FLEET_OPTIONS,
    "no-kexec": {
      type: "boolean",
      description: "Stop at state prepared; issue the kexec later (systemctl kexec) or cancel.",
    },
    "allow-unknown-version": {
      type: "boolean",
      description: "Go ahead although a kernel's LUO version is unknown (recorded as an override).",
    },
  },
  run(context, args) {
    return withUpdate(context, async (update) => {
      const controller = new AbortController();
      const onTerm = () => {
        context.log.warning("SIGTERM: rolling the update back before the kexec.");
        controller.abort(new Error("The agent received SIGTERM before the kexec."));
      };
      Deno.addSignalListener("SIGTERM", onTerm);
      try {
        const record = await runPrepare(update, {
          stopAtPrepared: args.values["no-kexec"] === true,
          allowUnknownVersion: args.values["allow-unknown-version"] === true,
          signal: controller.signal,
          ...(args.values.now === true ? { fleetOverride: fleetOverride(args)! } : {}),
        });
        printRecord(context, record, args.values.json === true);
        if (!args.values.json) {
          context.log.info(
            record.status === "prepared"
              ? `Attempt ${record.id} is prepared; kexec with 'systemctl kexec' or cancel.`
              : `Attempt ${record.id}: the kexec into ${
                record.kernels.target.release ?? "the target"
              } ` +
                "was issued.",
          );
        }
        return ExitCode.Success;
      } finally {
        Deno.removeSignalListener("SIGTERM", onTerm);
      }
    }, { metrics: true, fleet: "required" });
  },
};

/** `finish`: after the kexec, finish the update (what liveupdate-finish.service runs at boot). */
export const finishCommand: Command = {
  name: "finish",
  summary: "After a live update, verify, run the phases, wait for reclaim and finish.",
  description: [
    "Runs at every boot. With nothing to finish it exits at once. After a live-update boot it",
    'verifies the booted kernel and the handover against the record, runs phase "updated",',
    "waits until the preserved devices are reclaimed, finishes the update in the kernel and runs",
    'phase "finish". After a kexec that did not happen it records the failure and runs phase',
    '"cancel"; after an interrupted prepare it completes the rollback.',
  ].join("\n"),
  options: JSON_OPTION,
  run(context, args) {
    return withUpdate(context, async (update) => {
      const resolution = await resolveUpdate(update, "finish");
      printResolution(context, resolution, args.values.json === true);
      return resolution.exitCode;
    }, { metrics: true });
  },
};

/** `recover`: bring the host to a known state after the agent was killed or power was lost. */
export const recoverCommand: Command = {
  name: "recover",
  summary: "Bring the host to a known state after an interrupted update (idempotent).",
  description: [
    "Reads the journal of the open attempt and the kernel's state, and either completes the",
    "rollback or hands over to finish. Running it twice changes nothing the second time.",
    "Damaged records are moved aside (*.corrupt) and reported.",
  ].join("\n"),
  options: JSON_OPTION,
  run(context, args) {
    return withUpdate(context, async (update) => {
      const resolution = await resolveUpdate(update, "recover");
      printResolution(context, resolution, args.values.json === true);
      return resolution.exitCode;
    }, { metrics: true });
  },
};

/** `cancel`: undo the open update before the kexec. */
export const cancelCommand: Command = {
  name: "cancel",
  summary: "Cancel the open update before the kexec; everything it changed is undone.",
  description: [
    'Undoes every step of the open attempt in reverse and runs phase "cancel". A prepare',
    "that is still running holds the update lock: stop it first ('systemctl stop",
    "liveupdate-prepare' makes it roll back by itself).",
  ].join("\n"),
  options: JSON_OPTION,
  run(context, args) {
    return withUpdate(context, async (update) => {
      const resolution = await runCancel(update);
      printResolution(context, resolution, args.values.json === true);
      return resolution.exitCode;
    }, { metrics: true });
  },
};

/** The preflight result as text: a header with the verdict, the plan as `Key: value` lines. */
export function renderCheck(result: PreflightResult): string {
  const { plan, problems, overrides } = result;
  const ok = problems.length === 0;
  const header = ok
    ? "● check: prepare would go ahead"
    : `× check: prepare would refuse (${problems.length} problem${
      problems.length === 1 ? "" : "s"
    })`;
  const width = Math.max(...plan.phases.map((phase) => phase.phase.length), 0);
  const rows: [string, string][] = [
    [
      "Target",
      `${plan.target.kernel || "(none)"} (${plan.target.release ?? "release unknown"})` +
      (plan.target.initrd ? `\ninitrd ${plan.target.initrd}` : ""),
    ],
    ["Cmdline", plan.target.cmdline || "(none)"],
    ["Compat", plan.compat.sentence || plan.compat.verdict],
    ["Backend", plan.backend],
    [
      "Devices",
      plan.devices.supported
        ? `${plan.devices.selected.length} selected, ${plan.devices.ancestors.length} ` +
          `ancestor(s) preserved with them, ${plan.devices.changes.length} flag(s) to change` +
          plan.devices.selected.map((d) => `\n${d.path}${d.unit ? ` (${d.unit})` : ""}`).join("")
        : "this kernel preserves no devices",
    ],
  ];
  if (plan.phases.length) {
    rows.push([
      "Phases",
      plan.phases.map((phase) =>
        `${phase.phase.padEnd(width)}  stop [${phase.stop.join(", ")}] start ` +
        `[${[...phase.start, phase.target].join(", ")}]`
      ).join("\n"),
    ]);
  }
  rows.push([
    "Kexec",
    `${plan.issue === "systemd" ? "kexec.target (systemd)" : "kexec.issue_command"}`,
  ]);
  if (overrides.length) rows.push(["Overrides", overrides.join("\n")]);
  if (!ok) rows.push(["Problems", problems.map((p) => `[${p.check}] ${p.message}`).join("\n")]);
  return [header, ...keyValues(rows)].join("\n") + "\n";
}

/** Version of the `check --json` document. */
export const CHECK_JSON_VERSION = 1;

/** `check`: the whole preflight and the plan; nothing is written anywhere. */
export const checkCommand: Command = {
  name: "check",
  summary: "Run preflight and show the plan; change nothing.",
  description: [
    "Every check prepare makes before it changes anything, and the plan it would carry out:",
    "the target and its command line, both kernels' LUO versions and the verdict, the devices,",
    "the units of each phase. Exits 0 when prepare would go ahead, 5 when it would refuse.",
  ].join("\n"),
  options: {
    ...JSON_OPTION,
    "allow-unknown-version": {
      type: "boolean",
      description: "Check as prepare --allow-unknown-version would.",
    },
  },
  run(context, args) {
    return withUpdate(context, async (update) => {
      const result = await preflight(update, {
        allowUnknownVersion: args.values["allow-unknown-version"] === true,
      });
      const ok = result.problems.length === 0;
      const { stdout } = context.host;
      if (args.values.json) {
        stdout.write(
          JSON.stringify(
            {
              version: CHECK_JSON_VERSION,
              ok,
              problems: result.problems,
              overrides: result.overrides,
              plan: result.plan,
            },
            null,
            2,
          ) + "\n",
        );
      } else {
        stdout.write(renderCheck(result));
      }
      return ok ? ExitCode.Success : ExitCode.Refused;
    }, { fleet: "none" });
  },
};

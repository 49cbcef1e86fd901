/**
 * `liveupdate-agent devices`: the devices the udev rules choose for preservation
 * and the kernel's view of each, side by side; after an update, which devices
 * were preserved, which are reclaimed, and which unit should reclaim the rest.
 *
 * @module
 */

import {
  buildDevicesReport,
  type DevicesReport,
  type DeviceView,
  listDevices,
  OwnershipRecordError,
  ownershipStoreFor,
  selectionFor,
} from "../devices/mod.ts";
import { ExitCode } from "../exit_codes.ts";
import { type DeviceKernel, KernelUnsupportedError, requireDevices } from "../kernel/mod.ts";
import { keyValues } from "./attempts_view.ts";
import { openConfiguredKernel } from "./configured_kernel.ts";
import type { Command, CommandContext } from "./command.ts";

/** Opens the kernel's per-device part for the command. */
export type DeviceKernelOpener = (context: CommandContext) => Promise<DeviceKernel>;

/** The kernel the configuration names (`kernel.backend`), through the kernel layer. */
export async function openConfiguredDeviceKernel(context: CommandContext): Promise<DeviceKernel> {
  return requireDevices(await openConfiguredKernel(context));
}

const flag = (value: boolean | undefined) => (value === undefined ? "?" : value ? "yes" : "no");

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd());
}

function flagRows(views: readonly DeviceView[], withUnit: boolean): string[] {
  const rows = [[
    "DEVICE",
    "UDEV ID",
    "REQUESTED",
    "PRESERVED",
    "RECLAIMED",
    ...(withUnit ? ["UNIT"] : []),
  ]];
  for (const view of views) {
    const requested = view.flags
      ? (view.flags.requested ? (view.owned ? "yes (agent)" : "yes (other)") : "no")
      : "?";
    rows.push([
      view.path,
      view.id ?? "-",
      requested,
      flag(view.flags?.preserved),
      flag(view.flags?.reclaimed),
      ...(withUnit ? [view.unit ?? "-"] : []),
    ]);
  }
  return table(rows);
}

/** The report as text: a header and `Key: value` lines as `systemctl status`, then the lists. */
export function renderDevicesText(report: DevicesReport): string {
  const match = Object.entries(report.match).map(([key, value]) => `${key}=${value}`).join(", ");
  const { summary } = report;
  const parts = [
    `${summary.selected} selected`,
    `${summary.requested} requested`,
    `${summary.toRequest} to request`,
    `${summary.toClear} to clear`,
    `${summary.conflicts} conflict${summary.conflicts === 1 ? "" : "s"}`,
  ];
  if (summary.preserved) {
    parts.push(`${summary.preserved} preserved`, `${summary.pendingReclaim} not reclaimed yet`);
  }
  const bullet = report.errors.length ? "×" : summary.selected ? "●" : "○";
  const state = report.errors.length
    ? `the udev data is unusable (${report.errors.length} error(s))`
    : summary.pendingReclaim
    ? `${summary.pendingReclaim} preserved device(s) wait to be reclaimed`
    : `${summary.selected} device(s) selected for preservation`;
  const lines: string[] = [
    `${bullet} devices: ${state}`,
    ...keyValues([
      ["Tag", `"${report.tag}" in ${report.index}` + (match ? `, matching ${match}` : "")],
      [
        "Kernel",
        report.kernel.available
          ? `state ${report.kernel.state}`
          : `unavailable — ${report.kernel.reason}`,
      ],
      ["Record", `${report.record} (the agent's own requests)`],
      [
        "Summary",
        `${parts.join(", ")}.` +
        (report.complete
          ? ""
          : "\nRequests by others on untagged devices are not shown; --all scans every device."),
      ],
    ]),
  ];
  const section = (title: string, body: string[]) => {
    lines.push("", title, ...body.map((line) => `  ${line}`));
  };
  section(
    `Selected (${report.selected.length})`,
    report.selected.length ? flagRows(report.selected, true) : ["none"],
  );
  if (report.ancestors.length) {
    section(
      `Ancestors preserved with them (${report.ancestors.length})`,
      flagRows(report.ancestors, false).map((row, i) =>
        i === 0 ? row : `${row}  (${report.ancestors[i - 1]!.note})`
      ),
    );
  }
  if (report.passedOver.length) {
    section(
      `Tagged but not selected (${report.passedOver.length})`,
      table([
        ["UDEV ID", "DEVICE", "WHY"],
        ...report.passedOver.map((view) => [view.id ?? "-", view.path || "-", view.note ?? ""]),
      ]),
    );
  }
  if (report.deselected.length) {
    section(
      `Requested by the agent earlier, no longer selected (${report.deselected.length}): ` +
        "the next prepare clears them",
      flagRows(report.deselected, true),
    );
  }
  if (report.conflicts.length) {
    section(
      `Conflicts: requested by someone else, not selected (${report.conflicts.length}): ` +
        "preserved anyway unless cleared (devices.clear_foreign)",
      flagRows(report.conflicts, false),
    );
  }
  if (report.pendingReclaim.length) {
    section(
      `Preserved, waiting to be reclaimed (${report.pendingReclaim.length})`,
      table([
        ["DEVICE", "UNIT THAT SHOULD RECLAIM IT"],
        ...report.pendingReclaim.map((view) => [
          view.path,
          view.unit ??
            (report.ancestors.some((a) => a.path === view.path)
              ? "(an ancestor: reclaimed with the devices below it)"
              : "(no LIVEUPDATE_UNIT in the udev rules)"),
        ]),
      ]),
    );
  }
  const unreadable = [...report.selected, ...report.ancestors, ...report.deselected]
    .filter((view) => view.error);
  for (const view of unreadable) lines.push(`warning: ${view.error}`);
  for (const warning of report.warnings) lines.push(`warning: ${warning.message}`);
  for (const error of report.errors) lines.push(`error: ${error.message}`);
  return lines.join("\n") + "\n";
}

/** The command, with the kernel opener as a parameter (tests pass their own). */
export function createDevicesCommand(
  options: { openDeviceKernel?: DeviceKernelOpener } = {},
): Command {
  const open = options.openDeviceKernel ?? openConfiguredDeviceKernel;
  return {
    name: "devices",
    summary: "Show the devices udev rules choose for preservation and the kernel's view of them.",
    description: [
      "Reads the udev tag index (devices.tag), each tagged device's udev data and sysfs, the",
      "kernel's live-update flags and the agent's record of its own requests; changes nothing.",
      "Lists the selected devices, the ancestors preserved with them, tagged devices passed over",
      "(and why), devices the agent requested that are no longer selected, and conflicts.",
      "After an update it shows which devices are preserved and not yet reclaimed, and the unit",
      "(LIVEUPDATE_UNIT) that should reclaim each. Exit code 1 when the udev data is unusable.",
    ].join("\n"),
    options: {
      json: { type: "boolean", description: "Print JSON (versioned schema, see the README)." },
      all: {
        type: "boolean",
        description: "Also scan every device for requests someone else made (slower).",
      },
    },
    async run(context, args) {
      const { config } = context.loaded;
      const fs = context.platform.kernelFs();
      const selection = selectionFor(config, fs);
      const store = ownershipStoreFor(config, context.host.fs);
      let owned;
      try {
        owned = await store.load();
      } catch (error) {
        if (!(error instanceof OwnershipRecordError)) throw error;
        selection.errors.push({ message: error.message });
        owned = new Map();
      }
      let kernel: DeviceKernel | { unavailable: string };
      try {
        kernel = await open(context);
      } catch (error) {
        if (!(error instanceof KernelUnsupportedError)) throw error;
        kernel = { unavailable: error.message };
      }
      const others = args.values.all ? listDevices({ fs, sysfs: config.paths.sysfs }) : undefined;
      const report = await buildDevicesReport({
        selection,
        kernel,
        owned,
        record: store.where,
        ...(others ? { others } : {}),
      });
      context.host.stdout.write(
        args.values.json ? JSON.stringify(report, null, 2) + "\n" : renderDevicesText(report),
      );
      return report.errors.length > 0 ? ExitCode.Failed : ExitCode.Success;
    },
  };
}

/** `liveupdate-agent devices`. */
export const devicesCommand: Command = createDevicesCommand();

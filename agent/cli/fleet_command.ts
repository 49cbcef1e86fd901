/**
 * `liveupdate-agent fleet`: the operator's view of the fleet rollout and the way
 * to free a slot a failed update keeps.
 *
 * @module
 */

import { describeError, UsageError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import {
  createFleet,
  describeWindow,
  type FleetCoordinator,
  type FleetListing,
  type FleetRuntimeState,
  formatWindowTime,
  type HolderListing,
  readFleetState,
} from "../fleet/mod.ts";
import type { Command, CommandContext } from "./command.ts";
import { procFactsOf } from "./platform.ts";

/** This host's name from procfs, or none (with a debug line) when it cannot be read. */
function hostnameOf(context: CommandContext): string | undefined {
  try {
    return procFactsOf(context.platform, context.loaded.config).hostname();
  } catch (error) {
    context.log.debug(`The host name is unknown: ${describeError(error)}`);
    return undefined;
  }
}

/** Version of the `fleet status --json` document. */
export const FLEET_STATUS_JSON_VERSION = 1;

function describeHolder(holder: HolderListing): string {
  const name = holder.hostname && holder.hostname !== holder.id
    ? `${holder.id} (${holder.hostname})`
    : holder.id;
  const parts = [
    name,
    holder.state,
    holder.stage ? `stage ${holder.stage}` : "",
    holder.lease_bound ? "lease-bound" : "permanent",
    holder.updated_at ? `since ${holder.updated_at}` : "",
    holder.reason ? `reason: ${holder.reason}` : "",
  ];
  return parts.filter((part) => part !== "").join("  ");
}

function localLines(state: FleetRuntimeState | undefined): string[] {
  if (state === undefined) return ["This host: no fleet activity recorded in this boot."];
  const lines = [
    `This host: ${state.phase} since ${state.since} (pid ${state.pid}, ${state.attempts} tries)`,
  ];
  if (state.next_attempt_at && state.phase.startsWith("waiting")) {
    lines.push(`  next try: ${state.next_attempt_at}`);
  }
  if (state.blocked_by?.length && state.phase.startsWith("waiting")) {
    lines.push(`  blocked by: ${state.blocked_by.join(", ")}`);
  }
  if (state.override) {
    lines.push(`  window override: ${state.override.reason} (${state.override.at})`);
  }
  if (state.last_decision) {
    lines.push(`  last decision: ${state.last_decision.kind}: ${state.last_decision.message}`);
  }
  return lines;
}

function listingLines(listing: FleetListing, fleet: FleetCoordinator): string[] {
  const lines: string[] = [];
  const groups = new Map<string, HolderListing[]>();
  for (const holder of listing.holders) {
    groups.set(holder.group, [...groups.get(holder.group) ?? [], holder]);
  }
  if (!groups.has(fleet.group)) groups.set(fleet.group, []);
  lines.push(`Slots (etcd revision ${listing.revision ?? "?"}):`);
  for (const [group, holders] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const counts = new Set(holders.map((h) => h.slots).filter((n) => n !== undefined));
    if (group === fleet.group) counts.add(fleet.slots);
    const slots = counts.size === 1
      ? `${[...counts][0]}`
      : counts.size > 1
      ? `agents disagree: ${[...counts].join(" or ")}`
      : "?";
    lines.push(`  ${group}: ${holders.length} held of ${slots}`);
    for (const holder of holders) lines.push(`    ${describeHolder(holder)}`);
  }
  if (listing.halts.length > 0) {
    lines.push("Halted by (free with 'liveupdate-agent fleet release HOST'):");
    for (const halt of listing.halts) {
      lines.push(
        `  ${halt.id}${halt.hostname && halt.hostname !== halt.id ? ` (${halt.hostname})` : ""} ` +
          `in group ${halt.group}${halt.at ? ` since ${halt.at}` : ""}: ${halt.reason ?? "failed"}`,
      );
    }
  } else {
    lines.push("Halted by: nothing");
  }
  return lines;
}

async function status(context: CommandContext, fleet: FleetCoordinator, json: boolean) {
  const { config } = context.loaded;
  const { host } = context;
  const state = await readFleetState(host.fs, config.paths.runtime_dir).catch((error) => {
    context.log.warning((error as Error).message);
    return undefined;
  });
  const window = fleet.windowStatus();
  let listing: FleetListing | undefined;
  let error: string | undefined;
  try {
    listing = await fleet.backend.list();
  } catch (caught) {
    error = (caught as Error).message;
  }
  if (json) {
    const doc = {
      version: FLEET_STATUS_JSON_VERSION,
      backend: fleet.backend.name,
      description: fleet.backend.description,
      host: { id: fleet.hostId, group: fleet.group, slots: fleet.slots },
      window: {
        description: describeWindow(fleet.window),
        open: window.open,
        opens_at: window.opensAt?.toISOString() ?? null,
        closes_at: window.closesAt?.toISOString() ?? null,
      },
      local: state ?? null,
      fleet: listing ?? null,
      error: error ?? null,
    };
    host.stdout.write(JSON.stringify(doc, null, 2) + "\n");
  } else {
    const when = window.open
      ? (window.closesAt ? `open until ${formatWindowTime(fleet.window, window.closesAt)}` : "open")
      : `closed, opens ${formatWindowTime(fleet.window, window.opensAt!)}`;
    const lines = [
      `Fleet:  ${fleet.backend.description}`,
      `Host:   ${fleet.hostId} (group "${fleet.group}", ${fleet.slots} slot(s))`,
      `Window: ${describeWindow(fleet.window)}${fleet.window ? `: ${when}` : ""}`,
      ...localLines(state),
    ];
    if (listing) lines.push(...listingLines(listing, fleet));
    else if (!error) {
      lines.push(
        "Slots:  the FleetLock protocol cannot list holders; ask the server (airlock keeps them " +
          "in etcd, fleetlock in Kubernetes leases).",
      );
    }
    host.stdout.write(lines.join("\n") + "\n");
  }
  if (error) {
    context.log.error(`Cannot read the fleet's slots: ${error}`);
    return ExitCode.Failed;
  }
  return ExitCode.Success;
}

async function release(
  context: CommandContext,
  fleet: FleetCoordinator,
  who: string,
  group: string,
  force: boolean,
  json: boolean,
) {
  const result = await fleet.backend.operatorRelease(who, group, { force });
  context.log.notice(
    result.released.length + result.halts.length > 0
      ? `Operator freed the fleet slot of "${who}".`
      : `Operator release: "${who}" held no slot and halted nothing.`,
    {
      fleet: "operator-release",
      who,
      group: group || null,
      force,
      released: result.released.map((h) => `${h.group}/${h.id}`).join(",") || null,
      halts: result.halts.map((h) => `${h.group}/${h.id}`).join(",") || null,
    },
  );
  if (json) {
    context.host.stdout.write(JSON.stringify({ version: 1, ...result }, null, 2) + "\n");
    return ExitCode.Success;
  }
  const lines: string[] = [];
  for (const holder of result.released) {
    lines.push(
      fleet.backend.name === "fleetlock"
        ? `Sent the FleetLock unlock for ${holder.id} in group ${holder.group}.`
        : `Freed the slot of ${describeHolder(holder)} in group ${holder.group}.`,
    );
  }
  for (const halt of result.halts) {
    lines.push(`Lifted the halt of ${halt.id} in group ${halt.group}: ${halt.reason ?? "failed"}.`);
  }
  if (lines.length === 0) lines.push(`"${who}" holds no slot and halts nothing.`);
  context.host.stdout.write(lines.join("\n") + "\n");
  return ExitCode.Success;
}

/** `fleet status` and `fleet release`. */
export const fleetCommand: Command = {
  name: "fleet",
  summary: "Show the fleet rollout (slots, halts, this host's wait), or free a kept slot.",
  description: [
    "fleet status           This host's id, group and maintenance window, what it waits for,",
    "                       and (etcd) every slot holder and every halt of the rollout.",
    "fleet release [HOST]   Free the slot a failed update keeps and lift its halt, so the",
    "                       rollout goes on. HOST is a host id or (etcd) a host name;",
    "                       default: this host. A slot whose agent is alive needs --force.",
    "",
    'Needs fleet.backend "etcd" or "fleetlock" (see the README\'s "Fleet rollouts").',
  ].join("\n"),
  options: {
    json: { type: "boolean", description: "Print JSON." },
    group: {
      type: "string",
      value: "GROUP",
      description:
        "release: only in this group (FleetLock: the group to unlock; default: this host's).",
    },
    force: {
      type: "boolean",
      description:
        "release: also free a slot whose agent is alive (it loses the slot and rolls back).",
    },
  },
  positionals: ["status|release", "HOST"],
  async run(context, args) {
    const [action = "status", who] = args.positionals;
    if (action !== "status" && action !== "release") {
      throw new UsageError(
        `Unknown fleet action '${action}': use 'fleet status' or 'fleet release [HOST]'.`,
      );
    }
    if (action === "status" && who !== undefined) {
      throw new UsageError("'fleet status' takes no host. Run 'liveupdate-agent fleet --help'.");
    }
    const { config } = context.loaded;
    const json = args.values.json === true;
    if (config.fleet.backend === "none") {
      if (action === "release") {
        throw new UsageError(
          'fleet.backend is "none": there is no fleet slot to free. Set fleet.backend first.',
        );
      }
      if (json) {
        context.host.stdout.write(
          JSON.stringify({ version: FLEET_STATUS_JSON_VERSION, backend: "none" }, null, 2) + "\n",
        );
      } else {
        context.host.stdout.write(
          'Fleet:  none (fleet.backend = "none"): this host updates without fleet slots.\n',
        );
      }
      return ExitCode.Success;
    }
    const fleet = (await createFleet(config, context.host, context.log, {
      hostname: hostnameOf(context),
    }))!;
    try {
      if (action === "status") return await status(context, fleet, json);
      const group = typeof args.values.group === "string"
        ? args.values.group
        : fleet.backend.name === "fleetlock"
        ? fleet.group
        : "";
      return await release(
        context,
        fleet,
        who ?? fleet.hostId,
        group,
        args.values.force === true,
        json,
      );
    } finally {
      fleet.close();
    }
  },
};

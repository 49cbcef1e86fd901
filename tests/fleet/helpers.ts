/**
 * Helpers of the fleet tests: configuration roots with a fleet drop-in, a host
 * whose output is captured, and a coordinator built the way the agent builds it.
 *
 * @module
 */

import { type Config, loadConfig } from "../../agent/config/mod.ts";
import { createFleet, type FleetCoordinator } from "../../agent/fleet/mod.ts";
import { createTestHost, type TestHost } from "../../agent/host/mod.ts";
import { createLogger, type Logger } from "../../agent/log/mod.ts";

/** A temporary configuration root holding one drop-in; remove `dir` when done. */
export interface ConfigRoot {
  dir: string;
  /** The runtime directory the drop-in points paths.runtime_dir at. */
  runtimeDir: string;
  config: Config;
}

/** Writes `toml` as a drop-in under a new temporary root and loads it. */
export async function configRoot(toml: string, name = "fleet"): Promise<ConfigRoot> {
  const dir = await Deno.makeTempDir({ prefix: `liveupdate-fleet-${name}-` });
  const runtimeDir = `${dir}/run/liveupdate`;
  await Deno.mkdir(`${dir}/etc/liveupdate/config.d`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/etc/liveupdate/config.d/50-fleet.toml`,
    `[paths]\nruntime_dir = "${runtimeDir}"\n${toml}`,
  );
  const { config } = await loadConfig(Deno, { root: dir });
  return { dir, runtimeDir, config };
}

/** The TOML of an etcd fleet for `host`. */
export function etcdToml(options: {
  endpoints: readonly string[];
  host: string;
  group?: string;
  slots?: number;
  leaseTtl?: string;
  halt?: "fleet" | "group" | "slot";
  retry?: string;
  waitTimeout?: string;
  requestTimeout?: string;
  prefix?: string;
  /** fleet.health.units (default none). */
  healthUnits?: readonly string[];
  /** fleet.health.devices_reclaimed (default: the schema's, true). */
  devicesReclaimed?: boolean;
  healthTimeout?: string;
  extra?: string;
}): string {
  return [
    "[fleet]",
    'backend = "etcd"',
    `host_id = "${options.host}"`,
    `group = "${options.group ?? "default"}"`,
    `slots = ${options.slots ?? 2}`,
    `retry_interval = "${options.retry ?? "100ms"}"`,
    `wait_timeout = "${options.waitTimeout ?? "2min"}"`,
    "[fleet.health]",
    'interval = "100ms"',
    `timeout = "${options.healthTimeout ?? "5s"}"`,
    ...(options.healthUnits
      ? [`units = [${options.healthUnits.map((u) => JSON.stringify(u)).join(", ")}]`]
      : []),
    ...(options.devicesReclaimed === undefined
      ? []
      : [`devices_reclaimed = ${options.devicesReclaimed}`]),
    "[fleet.etcd]",
    `endpoints = [${options.endpoints.map((e) => JSON.stringify(e)).join(", ")}]`,
    `lease_ttl = "${options.leaseTtl ?? "3s"}"`,
    `halt = "${options.halt ?? "fleet"}"`,
    `request_timeout = "${options.requestTimeout ?? "2s"}"`,
    `prefix = "${options.prefix ?? "/liveupdate/fleet/"}"`,
    options.extra ?? "",
    "",
  ].join("\n");
}

/** A coordinator built from a configuration root, with the host and logger it used. */
export interface TestFleet extends AsyncDisposable {
  fleet: FleetCoordinator;
  host: TestHost;
  log: Logger;
  root: ConfigRoot;
}

/** Builds a coordinator from `toml` exactly as the agent would; dispose to clean up. */
export async function testFleet(toml: string, name = "fleet"): Promise<TestFleet> {
  const root = await configRoot(toml, name);
  const host = createTestHost();
  const log = createLogger({
    output: host.stderr,
    clock: host.clock,
    level: "debug",
    format: "json",
  });
  // The host name operators see beside the id (the agent reads it from procfs).
  const fleet = await createFleet(root.config, host, log, {
    hostname: `node-${name}`,
  }).catch(async (error) => {
    await Deno.remove(root.dir, { recursive: true });
    throw error;
  });
  if (!fleet) throw new Error("fleet.backend is none");
  return {
    fleet,
    host,
    log,
    root,
    async [Symbol.asyncDispose]() {
      fleet.close();
      await Deno.remove(root.dir, { recursive: true });
    },
  };
}

/** The JSON log lines a test host's stderr holds. */
export function logLines(host: TestHost): Record<string, unknown>[] {
  return host.stderr.text().trim().split("\n").filter((line) => line.startsWith("{")).map((line) =>
    JSON.parse(line)
  );
}

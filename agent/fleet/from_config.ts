/**
 * Builds the fleet layer from the configuration and the host.
 *
 * @module
 */

import type { Config } from "../config/mod.ts";
import type { Host } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import { VERSION } from "../version.ts";
import type { FleetBackend } from "./backend.ts";
import { FleetCoordinator } from "./coordinator.ts";
import { EtcdBackend } from "./etcd_backend.ts";
import { EtcdClient } from "./etcd_client.ts";
import { FleetError } from "./fleet_error.ts";
import { FleetLockBackend } from "./fleetlock_backend.ts";
import { readHostId } from "./host_id.ts";
import { createHttpClient } from "./http.ts";
import { FleetStateFile } from "./state_file.ts";
import { windowFromConfig } from "./window.ts";

async function readPassword(host: Host, file: string): Promise<string> {
  let text: string;
  try {
    text = await host.fs.readTextFile(file);
  } catch (error) {
    throw new FleetError(
      `Cannot read fleet.etcd.password_file "${file}": ${(error as Error).message}. Fix the ` +
        "file or the setting.",
      { cause: error },
    );
  }
  const password = text.replace(/\r?\n$/, "");
  if (password === "") {
    throw new FleetError(`fleet.etcd.password_file "${file}" is empty. Put the password in it.`);
  }
  return password;
}

/** Creates the configured backend. Needs `--allow-net` for its endpoints. */
export async function createBackend(
  config: Config,
  host: Host,
  log: Logger,
): Promise<FleetBackend> {
  const { fleet } = config;
  if (fleet.backend === "etcd") {
    const credentials = fleet.etcd.username === "" ? undefined : {
      username: fleet.etcd.username,
      password: await readPassword(host, fleet.etcd.password_file),
    };
    if (credentials && fleet.etcd.endpoints.some((url) => url.startsWith("http:"))) {
      log.warning(
        "fleet.etcd sends its password over plain http to some endpoints; use https endpoints.",
      );
    }
    const httpClient = await createHttpClient(host.fs, fleet.etcd, "fleet.etcd");
    const client = new EtcdClient({
      endpoints: fleet.etcd.endpoints,
      requestTimeoutMs: fleet.etcd.request_timeout,
      httpClient,
      ...(credentials ? { credentials } : {}),
      log,
    });
    return new EtcdBackend({
      client,
      prefix: fleet.etcd.prefix,
      leaseTtlSeconds: Math.ceil(fleet.etcd.lease_ttl / 1000),
      halt: fleet.etcd.halt,
      clock: host.clock,
      log,
    });
  }
  if (fleet.backend === "fleetlock") {
    const httpClient = await createHttpClient(host.fs, fleet.fleetlock, "fleet.fleetlock");
    return new FleetLockBackend({
      url: fleet.fleetlock.url,
      requestTimeoutMs: fleet.fleetlock.request_timeout,
      httpClient,
      now: () => host.clock.now(),
    });
  }
  throw new FleetError('fleet.backend is "none": this host takes part in no fleet rollout.');
}

/** Options of {@link createFleet}. */
export interface CreateFleetOptions {
  /** Numbers in [0, 1) for jitter. */
  random?: () => number;
  /**
   * The host name shown beside the host id to other hosts and operators (the
   * platform's `ProcFacts.hostname()` in production); none when not given.
   */
  hostname?: string;
}

/**
 * The fleet coordinator of the configuration, or undefined when `fleet.backend`
 * is "none". Reads the machine id (or takes `fleet.host_id`) and the TLS and
 * password files; needs `--allow-net` for the endpoints. Close it
 * when done.
 */
export async function createFleet(
  config: Config,
  host: Host,
  log: Logger,
  options: CreateFleetOptions = {},
): Promise<FleetCoordinator | undefined> {
  const { fleet } = config;
  if (fleet.backend === "none") return undefined;
  const hostId = await readHostId(host.fs, fleet);
  const hostname = options.hostname ?? "";
  const backend = await createBackend(config, host, log);
  return new FleetCoordinator({
    backend,
    hostId,
    group: fleet.group,
    slots: fleet.group_slots[fleet.group] ?? fleet.slots,
    window: windowFromConfig(fleet.window),
    waitTimeoutMs: fleet.wait_timeout,
    retryIntervalMs: fleet.retry_interval,
    retryJitterPercent: fleet.retry_jitter,
    healthTimeoutMs: fleet.health.timeout,
    healthIntervalMs: fleet.health.interval,
    clock: host.clock,
    log: log.with({ host_id: hostId }),
    info: { hostname, agent: VERSION },
    stateFile: new FleetStateFile(host.fs, config.paths.runtime_dir, log),
    ...(options.random ? { random: options.random } : {}),
  });
}

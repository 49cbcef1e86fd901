/**
 * What the update flow does to the host, through the agent's own layers, run by
 * tests/integration/exact_permissions_test.ts under exactly the agent's
 * permission flags (no `-A`): load the configuration from /etc/liveupdate, read
 * the procfs facts, take the update lock in /run/liveupdate, request the selected
 * devices (udev database, sysfs, the record in /var/lib/liveupdate), prepare and
 * cancel, see the kernel refuse a second prepare with its errno, and write the
 * metrics file. Prints one JSON object; any failure is an uncaught error (exit 1).
 *
 * @module
 */

import { loadConfig } from "../../agent/config/mod.ts";
import { ownershipStoreFor, reconcileDevices, selectionFor } from "../../agent/devices/mod.ts";
import { procFactsOf } from "../../agent/cli/mod.ts";
import { lazyKernelFs, lazyLibc } from "../../agent/host/mod.ts";
import {
  kernelContext,
  KernelError,
  openKernel,
  requireDevices,
  requireStateMachine,
} from "../../agent/kernel/mod.ts";
import { writeMetricsFile } from "../../agent/metrics/mod.ts";
import { acquireUpdateLock } from "../../agent/update/lock.ts";

const libc = lazyLibc();
const platform = { libc, kernelFs: lazyKernelFs(libc) };
const { config } = await loadConfig(Deno);
const fs = platform.kernelFs();
const proc = procFactsOf(platform, config);
const facts = {
  release: proc.osRelease(),
  bootId: proc.bootId(),
  uptime: proc.uptimeSeconds(),
  cmdline: proc.cmdline(),
  hostname: proc.hostname(),
};

using _lock = acquireUpdateLock(libc(), `${config.paths.runtime_dir}/update.lock`);
const kernel = await openKernel(kernelContext(config, { fs, libc }), config.kernel.backend);
const machine = requireStateMachine(kernel);
const devices = requireDevices(kernel);

const selection = selectionFor(config, fs);
const store = ownershipStoreFor(config, Deno);
const reconciled = await reconcileDevices({ kernel: devices, selection, store });
const first = reconciled.requested[0]!;
await devices.setRequested(first, false);
await devices.setRequested(first, true);
const flags = await devices.readDevice(first);

await machine.prepare();
const prepared = await machine.state();
let refused: { errno?: string; operation: string } | undefined;
try {
  await machine.prepare();
} catch (error) {
  if (!(error instanceof KernelError)) throw error;
  refused = { errno: error.errno, operation: error.operation };
}
await machine.cancel();
const cancelled = await machine.state();

const metrics = "/var/lib/prometheus/node-exporter/liveupdate.prom";
await writeMetricsFile(Deno, metrics, { records: [], kernelState: cancelled });

Deno.stdout.writeSync(
  new TextEncoder().encode(
    JSON.stringify({
      facts,
      requested: reconciled.requested,
      record: await Deno.readTextFile(`${config.paths.state_dir}/devices-requested.json`),
      flags,
      prepared,
      refused,
      cancelled,
      metrics: await Deno.readTextFile(metrics),
    }) + "\n",
  ),
);

// deno-lint-ignore-file no-console -- a benchmark helper that prints its result
/**
 * One measured run for tests/bench/devices_bench.ts, in a fresh process so wall
 * time and peak memory are those of a real invocation:
 *
 *     deno run -A tests/bench/_devices_run.ts MODE SYSFS UDEV STATE
 *
 * Modes:
 *
 * - `agent`: select from the tag index (through the selection cache in STATE),
 *   reconcile (write, read back), record in STATE — what prepare's device step
 *   does (`applyDeviceSelection`). A second run has nothing to change.
 * - `undo`: reconcile with a tag nobody carries, so the agent clears what it
 *   requested (resets the tree between rounds).
 * - `naive`: a Deno loop reading every udev data file, writing each match.
 * - `index`: only the tag index, writing 1 for each entry (no data files, no
 *   check, no record): the floor for a Deno process.
 * - `reset`: writes 0 for every tagged PCI device and removes the selection cache
 *   (not measured): the next `agent` run starts cold.
 * - `reset-flags`: writes 0 for every tagged PCI device, keeps the cache.
 * - `empty`: nothing (the cost of starting Deno).
 *
 * Prints one JSON line: { mode, ms: {…}, changed, peakKb }.
 *
 * @module
 */

import {
  fileOwnershipStore,
  fileSelectionCacheStore,
  reconcileDevices,
  selectDevicesCached,
  SELECTION_CACHE_FILE,
} from "../../agent/devices/mod.ts";
import { lazyKernelFs, lazyLibc } from "../../agent/host/mod.ts";
import { openKernel, requireDevices } from "../../agent/kernel/mod.ts";

const [mode, sysfs, udev, state] = Deno.args;
if (!mode || !sysfs || !udev || !state) {
  throw new Error(
    "usage: _devices_run.ts agent|undo|naive|index|reset|reset-flags|empty SYSFS UDEV STATE",
  );
}

function peakKb(): number {
  return Number(/VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
}

const started = performance.now();
const ms: Record<string, number> = {};
let changed = 0;
const encoder = new TextEncoder();

function pciIndex(): string[] {
  return [...Deno.readDirSync(`${udev}/tags/liveupdate`)]
    .map((entry) => entry.name)
    .filter((id) => id.startsWith("+pci:"))
    .map((id) => id.slice("+pci:".length));
}

if (mode === "agent" || mode === "undo") {
  const libc = lazyLibc();
  const fs = lazyKernelFs(libc)();
  const kernel = requireDevices(
    await openKernel({
      fs,
      libc,
      sysfs,
      debugfs: `${state}/nonexistent`,
      device: `${state}/nonexistent`,
      watchInterval: 1000,
    }, "rfc-v1"),
  );
  const selection = await selectDevicesCached({
    fs,
    udevDb: udev,
    sysfs,
    tag: mode === "agent" ? "liveupdate" : "liveupdate-bench-none",
  }, fileSelectionCacheStore(Deno, state));
  ms.select = performance.now() - started;
  const result = await reconcileDevices({
    kernel,
    selection,
    store: fileOwnershipStore(Deno, state),
  });
  ms.reconcile = performance.now() - started - ms.select;
  changed = result.requested.length + result.cleared.length;
} else if (mode === "naive") {
  const decoder = new TextDecoder();
  const one = encoder.encode("1");
  for (const entry of Deno.readDirSync(`${udev}/data`)) {
    const text = decoder.decode(Deno.readFileSync(`${udev}/data/${entry.name}`));
    if (!text.includes("\nQ:liveupdate\n") || !entry.name.startsWith("+pci:")) continue;
    const name = entry.name.slice("+pci:".length);
    Deno.writeFileSync(`${sysfs}/bus/pci/devices/${name}/liveupdate/requested`, one);
    changed++;
  }
} else if (mode === "index" || mode === "reset" || mode === "reset-flags") {
  if (mode === "reset") await Deno.remove(`${state}/${SELECTION_CACHE_FILE}`).catch(() => {});
  const value = encoder.encode(mode === "index" ? "1" : "0");
  for (const name of pciIndex()) {
    Deno.writeFileSync(`${sysfs}/bus/pci/devices/${name}/liveupdate/requested`, value);
    changed++;
  }
} else if (mode !== "empty") {
  throw new Error(`unknown mode ${mode}`);
}
ms.total = performance.now() - started;
console.log(JSON.stringify({ mode, ms, changed, peakKb: peakKb() }));

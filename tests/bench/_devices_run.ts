// deno-lint-ignore-file no-console -- a benchmark helper that prints its result
/**
 * One measured run for tests/bench/devices_bench.ts, in a fresh process so wall
 * time and peak memory are those of a real invocation:
 *
 *     deno run -A tests/bench/_devices_run.ts MODE ROOT
 *
 * ROOT holds `sys/` (a sysfs tree) and `udev/` (its udev database), and `state/`
 * for the agent's record. Modes:
 *
 * - `agent`: select from the tag index, reconcile (write, verify), record — what
 *   `prepare` does. Run twice: the second run has nothing to change.
 * - `undo`: the agent's reconcile with an empty selection of its own devices
 *   (clears what it requested), to reset the tree between rounds.
 * - `naive`: a Deno loop reading every data file and writing each match (the
 *   obvious approach, for comparison).
 *
 * Prints one JSON line: { mode, ms: {…}, changed, peakKb }.
 *
 * @module
 */

import {
  fileOwnershipStore,
  libcDeviceFs,
  reconcileDevices,
  selectDevices,
} from "../../agent/devices/mod.ts";
import { lazyLibc } from "../../agent/host/mod.ts";
import { openKernel, requireDevices } from "../../agent/kernel/mod.ts";

const [mode, root] = Deno.args;
if (!mode || !root) throw new Error("usage: _devices_run.ts agent|undo|naive ROOT");

function peakKb(): number {
  return Number(/VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
}

const started = performance.now();
const ms: Record<string, number> = {};
let changed = 0;

if (mode === "agent" || mode === "undo") {
  const libc = lazyLibc();
  const kernel = requireDevices(
    await openKernel({
      fs: Deno,
      libc,
      sysfs: `${root}/sys`,
      debugfs: `${root}/nonexistent`,
      device: `${root}/nonexistent`,
      watchInterval: 1000,
    }, "rfc-v1"),
  );
  const selection = selectDevices({
    fs: libcDeviceFs(libc()),
    udevDb: `${root}/udev`,
    sysfs: `${root}/sys`,
    // "undo": a tag nobody carries, so every device the agent requested is deselected.
    tag: mode === "agent" ? "liveupdate" : "liveupdate-bench-none",
  });
  ms.select = performance.now() - started;
  const result = await reconcileDevices({
    kernel,
    selection,
    store: fileOwnershipStore(Deno, `${root}/state`),
  });
  ms.reconcile = performance.now() - started - ms.select;
  changed = result.requested.length + result.cleared.length;
} else if (mode === "naive") {
  const decoder = new TextDecoder();
  const one = new TextEncoder().encode("1");
  for (const entry of Deno.readDirSync(`${root}/udev/data`)) {
    const text = decoder.decode(Deno.readFileSync(`${root}/udev/data/${entry.name}`));
    if (!text.includes("\nQ:liveupdate\n") || !entry.name.startsWith("+pci:")) continue;
    const name = entry.name.slice("+pci:".length);
    Deno.writeFileSync(`${root}/sys/bus/pci/devices/${name}/liveupdate/requested`, one);
    changed++;
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
ms.total = performance.now() - started;
console.log(JSON.stringify({ mode, ms, changed, peakKb: peakKb() }));

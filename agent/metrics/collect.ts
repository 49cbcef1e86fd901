/**
 * Gathering everything the metrics file shows from where it lives — the attempt
 * records, the kernel's state (given), the fleet layer's state file — and writing
 * the file. The CLI refreshes the file this way after every command that changes
 * something and the watcher on every state change, so the file always has every
 * family, whoever wrote it last.
 *
 * @module
 */

import type { Config } from "../config/mod.ts";
import { readFleetState } from "../fleet/mod.ts";
import type { FileSystem } from "../host/mod.ts";
import type { AttemptStore } from "../store/mod.ts";
import type { MetricsInput } from "./update_metrics.ts";
import { writeMetricsFile } from "./write.ts";

/** What {@link collectMetricsInput} reads. */
export interface MetricsSources {
  fs: FileSystem;
  config: Config;
  store: AttemptStore;
  /** The kernel's live-update state, if known. */
  kernelState?: string;
  now: Date;
}

/** The metrics input from the records, the kernel's state and the fleet's state file. */
export async function collectMetricsInput(sources: MetricsSources): Promise<MetricsInput> {
  const { records } = await sources.store.list();
  const input: MetricsInput = { records };
  if (sources.kernelState) input.kernelState = sources.kernelState;
  if (sources.config.fleet.backend !== "none") {
    const state = await readFleetState(sources.fs, sources.config.paths.runtime_dir)
      .catch(() => undefined);
    if (state) input.fleet = { state, now: sources.now };
  }
  return input;
}

/**
 * Rewrites `metrics.file` (atomically) from everything it shows. Does nothing when
 * metrics are off. Needs read on the state and runtime directories, write on the
 * metrics file's directory. Throws what reading or writing throws.
 */
export async function refreshMetricsFile(sources: MetricsSources): Promise<void> {
  const file = sources.config.metrics.file;
  if (file === "") return;
  await writeMetricsFile(sources.fs, file, await collectMetricsInput(sources));
}

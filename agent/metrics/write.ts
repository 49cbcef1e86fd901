/**
 * Writing the metrics file for node_exporter's textfile collector, atomically (the
 * collector never reads half a file; temporary files do not end in `.prom`).
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import { writeFileAtomic } from "../store/mod.ts";
import { renderMetrics } from "./prometheus.ts";
import { type MetricsInput, updateMetrics } from "./update_metrics.ts";

/**
 * Writes the metrics derived from `input` to `file` (mode 0644, readable by the
 * collector). Does nothing when `file` is empty (metrics disabled). Needs write
 * permission on the file's directory.
 */
export async function writeMetricsFile(
  fs: FileSystem,
  file: string,
  input: MetricsInput,
): Promise<void> {
  if (file === "") return;
  await writeFileAtomic(fs, file, renderMetrics(updateMetrics(input)), { mode: 0o644 });
}

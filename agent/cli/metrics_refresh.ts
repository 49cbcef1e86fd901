/**
 * Keeping the metrics file complete: after every command that changes something
 * and in the watcher, rewrite it from the records, the kernel's state and the
 * fleet's state file (the update flow's own refresh at each outcome knows only the
 * records).
 *
 * @module
 */

import { describeError } from "../errors.ts";
import { refreshMetricsFile } from "../metrics/mod.ts";
import type { UpdateContext } from "../update/mod.ts";

/**
 * Rewrites `metrics.file`; reads the kernel's state unless given. A failure only
 * warns: metrics never fail a command.
 */
export async function refreshAllMetrics(
  update: UpdateContext,
  kernelState?: string,
): Promise<void> {
  if (update.config.metrics.file === "") return;
  let state = kernelState;
  if (state === undefined) {
    try {
      const kernel = await update.openKernel();
      if (kernel.stateMachine) state = await kernel.stateMachine.state();
    } catch {
      // no kernel state in the file
    }
  }
  try {
    await refreshMetricsFile({
      fs: update.fs,
      config: update.config,
      store: update.store,
      now: update.clock.now(),
      ...(state ? { kernelState: state } : {}),
    });
  } catch (error) {
    update.log.warning(`Could not write the metrics file: ${describeError(error)}`);
  }
}

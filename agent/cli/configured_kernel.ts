/**
 * The kernel the configuration names, opened for a command.
 *
 * @module
 */

import { type Kernel, kernelContext, openKernel } from "../kernel/mod.ts";
import type { CommandContext } from "./command.ts";

/**
 * Opens the kernel `kernel.backend` names (or the one `auto` finds) through the
 * platform's kernel files and libc; throws KernelUnsupportedError naming what is
 * missing. Needs `--allow-ffi`.
 */
export function openConfiguredKernel(context: CommandContext): Promise<Kernel> {
  const { config } = context.loaded;
  return openKernel(
    kernelContext(config, {
      fs: context.platform.kernelFs(),
      libc: context.platform.libc,
      log: context.log,
    }),
    config.kernel.backend,
  );
}

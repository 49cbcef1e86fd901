/**
 * Loading and unloading the target kernel with kexec-tools, always with an
 * argument array. The agent loads with `kexec -s` (kexec_file_load): the handover
 * data only travels with a kernel loaded that way.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { type KernelFs, type ProcessRunner, readBounded } from "../host/mod.ts";

/** kexec-tools failed or could not be run. */
export class KexecError extends AgentError {
  override name = "KexecError";
}

/** What to load. */
export interface KexecTarget {
  kernel: string;
  initrd?: string;
  cmdline: string;
}

/** Options of {@link KexecTools}. */
export interface KexecToolsOptions {
  /** Absolute path of the kexec program. */
  binary: string;
  /** Root of sysfs, for `kernel/kexec_loaded`. */
  sysfs: string;
  /** Longest time a load may take, in milliseconds. */
  timeoutMs: number;
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n").filter((line) => line.trim() !== "");
  return lines.at(-1)?.trim() ?? "";
}

/**
 * Drives kexec-tools. Needs `--allow-run` for the binary; reads `<sysfs>/kernel`
 * through the kernel's files (`Platform.kernelFs()`).
 */
export class KexecTools {
  constructor(
    private readonly processes: ProcessRunner,
    private readonly fs: KernelFs,
    private readonly options: KexecToolsOptions,
  ) {}

  /** The argument array `load` passes to kexec. */
  loadArgs(target: KexecTarget): string[] {
    return [
      "-s",
      "-l",
      target.kernel,
      ...(target.initrd ? [`--initrd=${target.initrd}`] : []),
      `--command-line=${target.cmdline}`,
    ];
  }

  private async run(args: string[], what: string): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.timeoutMs);
    let result;
    try {
      result = await this.processes.run(this.options.binary, args, { signal: controller.signal });
    } catch (error) {
      throw new KexecError(
        `Cannot run "${this.options.binary}" to ${what}: ${
          error instanceof Error ? error.message : String(error)
        }. Install kexec-tools or set kexec.binary.`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
    if (controller.signal.aborted) {
      throw new KexecError(
        `"${this.options.binary}" did not ${what} within ${
          this.options.timeoutMs / 1000
        }s and was ` +
          "stopped. Check the target image, or raise kexec.load_timeout.",
      );
    }
    if (result.code !== 0) {
      const detail = lastLine(result.stderr) || lastLine(result.stdout) || "no message";
      throw new KexecError(
        `"${this.options.binary} ${args.join(" ")}" failed to ${what} (exit ${result.code}): ` +
          `${detail}.`,
      );
    }
  }

  /** Loads the target with kexec_file_load. Throws KexecError with kexec's own message. */
  async load(target: KexecTarget): Promise<void> {
    await this.run(this.loadArgs(target), `load "${target.kernel}"`);
  }

  /** Unloads any loaded kexec kernel, so a later plain reboot stays a reboot. */
  async unload(): Promise<void> {
    await this.run(["-s", "-u"], "unload the kexec kernel");
  }

  /** Whether a kexec kernel is loaded (`<sysfs>/kernel/kexec_loaded`); undefined if unknown. */
  isLoaded(): Promise<boolean | undefined> {
    const read = readBounded(
      this.fs,
      `${this.options.sysfs}/kernel/kexec_loaded`,
      new Uint8Array(64),
    );
    if (read.kind !== "ok") return Promise.resolve(undefined);
    const text = new TextDecoder().decode(read.bytes).trim();
    return Promise.resolve(text === "1" ? true : text === "0" ? false : undefined);
  }
}

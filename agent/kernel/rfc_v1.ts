/**
 * The RFC v1 sysfs backend: `<sysfs>/kernel/liveupdate/{state,prepare,finish}` and
 * `<sysfs>/devices/…/liveupdate/{requested,preserved,reclaimed}`, through the
 * host's FileSystem. Writes exactly `1` or `0`, without creating or truncating
 * anything, and turns every refusal into a KernelError with the kernel's errno.
 *
 * @module
 */

import type { BackendProbe, BackendProvider, KernelContext } from "./backend.ts";
import { parseFlag, parseState } from "./contents.ts";
import { checkDevicePath } from "./device_path.ts";
import type {
  DeviceFlags,
  DeviceKernel,
  DevicePath,
  HeldRequested,
  Kernel,
  KernelFeatures,
  LuoState,
  StateMachine,
  StateObservation,
  WatchOptions,
} from "./kernel.ts";
import { KernelError, type KernelOperation } from "./kernel_error.ts";
import { errnoOf, kernelFailure } from "./kernel_failure.ts";
import { readIncomingHandover } from "./kho.ts";
import { holdRequestedMany, readRequestedMany, setRequestedMany } from "./rfc_v1_bulk.ts";
import { watchStateFile } from "./state_watcher.ts";

/** The global directory, relative to sysfs. */
export const RFC_V1_DIR = "kernel/liveupdate";
/** The files RFC v1 has. */
export const RFC_V1_FILES = ["state", "prepare", "finish"] as const;
/** Files the cover letter lists but v1 does not have; reported when found, never assumed. */
export const RFC_V1_EXTRA_FILES = ["cancel", "reset", "enabled"] as const;
const DEVICE_FLAGS = ["requested", "preserved", "reclaimed"] as const;

const encoder = new TextEncoder();

class RfcV1Kernel implements Kernel, StateMachine, DeviceKernel {
  readonly backend = "rfc-v1";
  readonly location: string;
  readonly stateMachine: StateMachine = this;
  readonly devices: DeviceKernel = this;
  private readonly devicesDir: string;

  constructor(private readonly context: KernelContext, readonly features: KernelFeatures) {
    this.location = `${context.sysfs}/${RFC_V1_DIR}`;
    this.devicesDir = `${context.sysfs}/devices`;
  }

  private async readText(
    file: string,
    operation: KernelOperation,
    device?: DevicePath,
  ): Promise<string> {
    try {
      return await this.context.fs.readTextFile(file);
    } catch (error) {
      throw kernelFailure(error, { file, operation, device });
    }
  }

  /** The state, or undefined when it cannot be read (for error messages). */
  private async stateIfReadable(): Promise<LuoState | undefined> {
    try {
      return await this.state();
    } catch {
      return undefined;
    }
  }

  private async write(
    file: string,
    value: "0" | "1",
    operation: KernelOperation,
    device?: DevicePath,
  ): Promise<void> {
    const bytes = encoder.encode(value);
    try {
      // No create, no truncate: a missing attribute must fail, not become a file.
      using handle = await this.context.fs.open(file, { write: true });
      const written = await handle.write(bytes);
      if (written !== bytes.length) {
        throw new KernelError(`The kernel accepted ${written} of 1 byte written to ${file}.`, {
          file,
          operation,
        });
      }
    } catch (error) {
      if (error instanceof KernelError) throw error;
      const state = errnoOf(error) && errnoOf(error) !== "ENOENT"
        ? await this.stateIfReadable()
        : undefined;
      throw kernelFailure(error, { file, operation, device, state });
    }
  }

  async state(): Promise<LuoState> {
    const file = `${this.location}/state`;
    return parseState(await this.readText(file, "read"), file);
  }

  prepare(): Promise<void> {
    return this.write(`${this.location}/prepare`, "1", "prepare");
  }

  cancel(): Promise<void> {
    return this.write(`${this.location}/prepare`, "0", "cancel");
  }

  finish(): Promise<void> {
    return this.write(`${this.location}/finish`, "1", "finish");
  }

  watch(options: WatchOptions = {}): AsyncGenerator<StateObservation, void, undefined> {
    return watchStateFile({
      libc: this.context.libc(),
      file: `${this.location}/state`,
      interval: options.interval ?? this.context.watchInterval,
      signal: options.signal,
      log: this.context.log,
    });
  }

  async readDevice(device: DevicePath): Promise<DeviceFlags> {
    const dir = `${this.devicesDir}/${checkDevicePath(device)}/liveupdate`;
    const [requested, preserved, reclaimed] = await Promise.all(
      DEVICE_FLAGS.map(async (flag) => {
        const file = `${dir}/${flag}`;
        return parseFlag(await this.readText(file, "read", device), file);
      }),
    );
    return { requested: requested!, preserved: preserved!, reclaimed: reclaimed! };
  }

  async setRequested(device: DevicePath, requested: boolean): Promise<void> {
    const file = `${this.devicesDir}/${checkDevicePath(device)}/liveupdate/requested`;
    return await this.write(
      file,
      requested ? "1" : "0",
      requested ? "request" : "unrequest",
      device,
    );
  }

  readRequestedMany(devices: readonly DevicePath[]): Promise<(boolean | KernelError)[]> {
    return Promise.resolve(readRequestedMany(this.context.libc(), this.devicesDir, devices));
  }

  setRequestedMany(
    devices: readonly DevicePath[],
    value: boolean,
  ): Promise<(KernelError | null)[]> {
    return Promise.resolve(
      setRequestedMany(
        this.context.libc(),
        this.devicesDir,
        `${this.location}/state`,
        devices,
        value,
      ),
    );
  }

  holdRequestedMany(devices: readonly DevicePath[], value: boolean): Promise<HeldRequested> {
    const held = holdRequestedMany(
      this.context.libc(),
      this.devicesDir,
      `${this.location}/state`,
      devices,
      value,
    );
    return Promise.resolve({
      flags: held.flags,
      write: (indexes) => Promise.resolve(held.write(indexes)),
      close: () => held.close(),
    });
  }

  incoming() {
    return readIncomingHandover(this.context.fs, this.context.debugfs);
  }
}

type Found = "file" | "directory" | "other" | "missing" | { errno: string };

async function look(context: KernelContext, path: string): Promise<Found> {
  try {
    const info = await context.fs.stat(path);
    return info.isFile ? "file" : info.isDirectory ? "directory" : "other";
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === "ENOENT") return "missing";
    return { errno: errno ?? (error instanceof Error ? error.message : String(error)) };
  }
}

/** Looks for the RFC v1 files below `context.sysfs`; says precisely what is missing. */
export async function probeRfcV1(context: KernelContext): Promise<BackendProbe> {
  const location = `${context.sysfs}/${RFC_V1_DIR}`;
  const probe: BackendProbe = {
    backend: "rfc-v1",
    location,
    present: false,
    usable: false,
    missing: [],
    problems: [],
    summary: "",
  };
  const dir = await look(context, location);
  if (dir === "missing") {
    const kernelDir = await look(context, `${context.sysfs}/kernel`);
    probe.missing.push(location);
    if (kernelDir === "directory") {
      probe.problems.push(
        `No ${location}: the running kernel has no RFC v1 live-update interface, or it was ` +
          "booted without liveupdate=1 or with KHO off.",
      );
    } else {
      probe.problems.push(
        `No ${context.sysfs}/kernel: ${context.sysfs} is not sysfs; check paths.sysfs.`,
      );
    }
    probe.summary = probe.problems[0]!;
    return probe;
  }
  probe.present = true;
  if (dir !== "directory") {
    probe.problems.push(
      typeof dir === "object"
        ? `${location} cannot be read (${dir.errno}).`
        : `${location} is not a directory.`,
    );
    probe.summary = probe.problems[0]!;
    return probe;
  }
  for (const name of RFC_V1_FILES) {
    const file = `${location}/${name}`;
    const found = await look(context, file);
    if (found === "missing") {
      probe.missing.push(file);
      probe.problems.push(`${file} is missing.`);
    } else if (typeof found === "object") {
      probe.problems.push(`${file} cannot be read (${found.errno}).`);
    } else if (found !== "file") {
      probe.problems.push(`${file} is not a file.`);
    }
  }
  const extraFiles: string[] = [];
  for (const name of RFC_V1_EXTRA_FILES) {
    if ((await look(context, `${location}/${name}`)) === "file") extraFiles.push(name);
  }
  if (probe.problems.length === 0) {
    try {
      const file = `${location}/state`;
      probe.state = parseState(await context.fs.readTextFile(file), file);
    } catch (error) {
      probe.problems.push(
        error instanceof KernelError
          ? error.message
          : kernelFailure(error, { file: `${location}/state`, operation: "read" }).message,
      );
    }
  }
  if (extraFiles.includes("enabled")) {
    const file = `${location}/enabled`;
    try {
      if (!parseFlag(await context.fs.readTextFile(file), file)) {
        probe.problems.push(`${file} says live update is disabled (0).`);
      }
    } catch (error) {
      probe.problems.push(
        error instanceof KernelError
          ? error.message
          : kernelFailure(error, { file, operation: "read" }).message,
      );
    }
  }
  const devicesDir = `${context.sysfs}/devices`;
  const devices = await look(context, devicesDir);
  if (devices !== "directory") {
    if (devices === "missing") probe.missing.push(devicesDir);
    probe.problems.push(`No ${devicesDir} directory: check paths.sysfs.`);
  }
  if (probe.problems.length > 0) {
    probe.summary = `The RFC v1 interface at ${location} is incomplete: ${probe.problems[0]}` +
      (probe.problems.length > 1 ? ` (and ${probe.problems.length - 1} more)` : "");
    return probe;
  }
  probe.usable = true;
  probe.features = { stateMachine: true, devices: true, extraFiles };
  probe.summary = `RFC v1 live-update interface at ${location}, state "${probe.state}".`;
  return probe;
}

/** The RFC v1 backend. */
export const rfcV1Provider: BackendProvider = {
  name: "rfc-v1",
  probe: probeRfcV1,
  open(context, probe) {
    return new RfcV1Kernel(
      context,
      probe.features ?? { stateMachine: true, devices: true, extraFiles: [] },
    );
  },
};

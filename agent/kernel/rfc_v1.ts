/**
 * The RFC v1 sysfs backend: `<sysfs>/kernel/liveupdate/{state,prepare,finish}` and
 * `<sysfs>/devices/…/liveupdate/{requested,preserved,reclaimed}`, through the
 * host's KernelFs (libc in production: Deno's file API refuses /sys under scoped
 * permissions). Writes exactly `1` or `0`, without creating or truncating
 * anything, and turns every refusal into a KernelError with the kernel's errno.
 *
 * @module
 */

import { failed, type KernelFs } from "../host/mod.ts";
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
import { fsFailureError, kernelFailure } from "./kernel_failure.ts";
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
const decoder = new TextDecoder();
/** A sysfs attribute holds at most a page. */
const ATTRIBUTE_SIZE = 4096;

/** The only files the agent writes below the sysfs root. */
const WRITABLE = /^(kernel\/liveupdate\/(prepare|finish)|devices\/[^\0]+\/liveupdate\/requested)$/;

/** Throws KernelError unless `file` is one of the live-update files below `sysfs`. */
export function checkWritable(sysfs: string, file: string, operation: KernelOperation): void {
  const relative = file.startsWith(`${sysfs}/`) ? file.slice(sysfs.length + 1) : undefined;
  if (relative === undefined || !WRITABLE.test(relative)) {
    throw new KernelError(
      `The agent refuses to write ${file}: below ${sysfs} it writes only ` +
        "kernel/liveupdate/{prepare,finish} and devices/…/liveupdate/requested.",
      { file, operation },
    );
  }
}

/**
 * The text of sysfs attribute `file` (one read call: sysfs hands over the whole
 * attribute at once), or the failure as the error Deno would have thrown.
 */
function readAttribute(fs: KernelFs, file: string, noFollow = false): string | Error {
  const buffer = new Uint8Array(ATTRIBUTE_SIZE);
  // An attribute is never a symlink: one planted there is not followed (its target's
  // contents would end up quoted in an error).
  const count = fs.read(file, buffer, { noFollow });
  if (failed(count)) return fsFailureError(count.errno, "read", file);
  return decoder.decode(buffer.subarray(0, count));
}

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

  private readText(file: string, operation: KernelOperation, device?: DevicePath): string {
    const text = readAttribute(this.context.fs, file, true);
    if (text instanceof Error) throw kernelFailure(text, { file, operation, device });
    return text;
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
    // No create, no truncate (KernelFs.write): a missing attribute fails, it does not
    // become a file. Only the live-update files, and opened below the sysfs root
    // through real directories only: a symlink or ".." planted on the way is refused.
    checkWritable(this.context.sysfs, file, operation);
    const written = this.context.fs.write(file, encoder.encode(value), {
      beneath: this.context.sysfs,
    });
    if (failed(written)) {
      const state = written.errno !== "ENOENT" ? await this.stateIfReadable() : undefined;
      throw kernelFailure(fsFailureError(written.errno, "write", file), {
        file,
        operation,
        device,
        state,
      });
    }
    if (written !== 1) {
      throw new KernelError(`The kernel accepted ${written} of 1 byte written to ${file}.`, {
        file,
        operation,
      });
    }
  }

  state(): Promise<LuoState> {
    const file = `${this.location}/state`;
    try {
      return Promise.resolve(parseState(this.readText(file, "read"), file));
    } catch (error) {
      return Promise.reject(error);
    }
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

  readDevice(device: DevicePath): Promise<DeviceFlags> {
    try {
      const dir = `${this.devicesDir}/${checkDevicePath(device)}/liveupdate`;
      const [requested, preserved, reclaimed] = DEVICE_FLAGS.map((flag) => {
        const file = `${dir}/${flag}`;
        return parseFlag(this.readText(file, "read", device), file);
      });
      return Promise.resolve({
        requested: requested!,
        preserved: preserved!,
        reclaimed: reclaimed!,
      });
    } catch (error) {
      return Promise.reject(error);
    }
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

function look(context: KernelContext, path: string): Found {
  const info = context.fs.stat(path);
  if (failed(info)) return info.errno === "ENOENT" ? "missing" : info;
  return info.type === "file" || info.type === "directory" ? info.type : "other";
}

/** Parses attribute `file` with `parse`; the problem sentence when that fails. */
function probeRead<T>(
  context: KernelContext,
  file: string,
  parse: (text: string, file: string) => T,
): T | { problem: string } {
  const text = readAttribute(context.fs, file, true);
  try {
    if (text instanceof Error) throw kernelFailure(text, { file, operation: "read" });
    return parse(text, file);
  } catch (error) {
    if (error instanceof KernelError) return { problem: error.message };
    throw error;
  }
}

/** Looks for the RFC v1 files below `context.sysfs`; says precisely what is missing. */
export function probeRfcV1(context: KernelContext): Promise<BackendProbe> {
  return Promise.resolve(lookForRfcV1(context));
}

function lookForRfcV1(context: KernelContext): BackendProbe {
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
  const dir = look(context, location);
  if (dir === "missing") {
    const kernelDir = look(context, `${context.sysfs}/kernel`);
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
    const found = look(context, file);
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
    if ((look(context, `${location}/${name}`)) === "file") extraFiles.push(name);
  }
  if (probe.problems.length === 0) {
    const state = probeRead(context, `${location}/state`, parseState);
    if (typeof state === "object") probe.problems.push(state.problem);
    else probe.state = state;
  }
  if (extraFiles.includes("enabled")) {
    const file = `${location}/enabled`;
    const enabled = probeRead(context, file, parseFlag);
    if (typeof enabled === "object") probe.problems.push(enabled.problem);
    else if (!enabled) probe.problems.push(`${file} says live update is disabled (0).`);
  }
  const devicesDir = `${context.sysfs}/devices`;
  const devices = look(context, devicesDir);
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

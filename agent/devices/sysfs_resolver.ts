/**
 * From udev ids to sysfs devices, through the links the kernel keeps for each:
 * `dev/{block,char}/<major>:<minor>`, `class/net/<interface>`,
 * `bus/<bus>/devices/<name>` and `class/<class>/<name>`. Every link is resolved
 * lexically ({@link resolveLink}) and every directory on the way to the device
 * must be a real directory below `<sysfs>/devices` (no symlink in between), so a
 * path the agent later writes under cannot lead anywhere else.
 *
 * Lookups are cached per resolver: a selection touches each shared ancestor
 * (root complex, root port) once.
 *
 * @module
 */

import type { DevicePath } from "../kernel/kernel.ts";
import { failed, type KernelFs, readBounded } from "../host/mod.ts";
import { resolveLink } from "./sysfs_path.ts";
import type { UdevId } from "./udev_id.ts";
import type { UdevRecord } from "./udev_data.ts";

/** What the resolver uses of a device's udev data. */
type UdevProperties = Pick<UdevRecord, "properties">;

/** Where a udev id leads, or why it leads nowhere the agent accepts. */
export type Resolved =
  | { path: DevicePath }
  | { problem: string; vanished: boolean };

/** What sysfs says about a device's driver and subsystem (for explanations). */
export interface DeviceIdentity {
  /** The bound driver, if any (`driver` link). */
  driver?: string;
  /** The bus, when the `subsystem` link points into `bus/`. */
  bus?: string;
  /** The class, when the `subsystem` link points into `class/`. */
  class?: string;
}

const UEVENT_LIMIT = 4096;
const NONE: readonly DevicePath[] = [];

/** Resolves udev ids to device paths below `<sysfs>/devices`. */
export class SysfsResolver {
  readonly #fs: KernelFs;
  readonly #sysfs: string;
  readonly #subsystemKind = new Map<string, "bus" | "class" | "none">();
  readonly #dirs = new Map<DevicePath, Resolved | true>();
  readonly #ancestorLists = new Map<DevicePath, readonly DevicePath[]>();
  readonly #buffer = new Uint8Array(UEVENT_LIMIT + 1);
  #netIndex: Map<number, string> | undefined;

  /** `sysfs` is the sysfs root ("/sys"); `fs` does the reading. */
  constructor(fs: KernelFs, sysfs: string) {
    this.#fs = fs;
    this.#sysfs = sysfs;
  }

  /** The sysfs root this resolver reads. */
  get sysfs(): string {
    return this.#sysfs;
  }

  /** The device `id` names; `record` is its udev data (for a network interface's name). */
  resolve(id: UdevId, record: UdevProperties | undefined): Resolved {
    switch (id.kind) {
      case "block":
        return this.#follow("dev/block", `${id.major}:${id.minor}`);
      case "char":
        return this.#follow("dev/char", `${id.major}:${id.minor}`);
      case "net":
        return this.#resolveNet(id.ifindex, record);
      case "driver":
        return {
          problem: `it names the driver "${id.driver}" of bus "${id.subsystem}", not a device`,
          vanished: false,
        };
      case "subsystem": {
        const kind = this.#kindOf(id.subsystem);
        if (kind === "none") {
          return {
            problem: `sysfs has neither "bus/${id.subsystem}" nor "class/${id.subsystem}", ` +
              "so it is not a device the kernel can preserve",
            vanished: false,
          };
        }
        return kind === "bus"
          ? this.#follow(`bus/${id.subsystem}/devices`, id.sysname)
          : this.#follow(`class/${id.subsystem}`, id.sysname);
      }
    }
  }

  /** The device ancestors of `path` (directories with a `uevent` file), nearest first. */
  ancestors(path: DevicePath): readonly DevicePath[] {
    const slash = path.lastIndexOf("/");
    return slash < 0 ? NONE : this.#ancestorsFrom(path.slice(0, slash));
  }

  /** `dir` itself if it is a device, then its device ancestors; shared between siblings. */
  #ancestorsFrom(dir: DevicePath): readonly DevicePath[] {
    let known = this.#ancestorLists.get(dir);
    if (known === undefined) {
      const slash = dir.lastIndexOf("/");
      const above = slash < 0 ? NONE : this.#ancestorsFrom(dir.slice(0, slash));
      const isDevice = this.#exists(`${this.#sysfs}/devices/${dir}/uevent`);
      known = isDevice ? [dir, ...above] : above;
      this.#ancestorLists.set(dir, known);
    }
    return known;
  }

  /** The driver and bus or class of the device at `path`, as far as sysfs tells. */
  identity(path: DevicePath): DeviceIdentity {
    const base = `${this.#sysfs}/devices/${path}`;
    const identity: DeviceIdentity = {};
    const driver = this.#linkName(`${base}/driver`);
    if (driver) identity.driver = driver.name;
    const subsystem = this.#linkName(`${base}/subsystem`);
    if (subsystem) {
      if (subsystem.parent === "bus") identity.bus = subsystem.name;
      else identity.class = subsystem.name;
    }
    return identity;
  }

  #linkName(link: string): { name: string; parent: string } | undefined {
    const target = this.#fs.readLink(link);
    if (failed(target)) return undefined;
    const parts = target.split("/").filter((part) => part !== "" && part !== "..");
    const name = parts.at(-1);
    if (!name) return undefined;
    return { name, parent: parts.at(-2) ?? "" };
  }

  /** Whether something is at `path`. */
  #exists(path: string): boolean {
    return this.#fs.kind(path) !== "missing";
  }

  #kindOf(subsystem: string): "bus" | "class" | "none" {
    let kind = this.#subsystemKind.get(subsystem);
    if (kind === undefined) {
      kind = this.#exists(`${this.#sysfs}/bus/${subsystem}/devices`)
        ? "bus"
        : this.#exists(`${this.#sysfs}/class/${subsystem}`)
        ? "class"
        : "none";
      this.#subsystemKind.set(subsystem, kind);
    }
    return kind;
  }

  /** Follows the link `<sysfs>/<linkDir>/<name>` to a checked device path. */
  #follow(linkDir: string, name: string): Resolved {
    const link = `${this.#sysfs}/${linkDir}/${name}`;
    const target = this.#fs.readLink(link);
    if (failed(target)) {
      // Decide by looking again, not by errno (see libcKernelFs).
      const kind = this.#fs.kind(link);
      if (kind === "missing") {
        return { problem: `"${link}" does not exist: the device vanished`, vanished: true };
      }
      if (kind !== "symlink") {
        return { problem: `"${link}" is not a symlink, as sysfs links are`, vanished: false };
      }
      return { problem: `cannot read the sysfs link "${link}" (${target.errno})`, vanished: false };
    }
    const resolved = resolveLink(linkDir, target);
    if ("problem" in resolved) {
      return {
        problem: `the sysfs link "${link}" is refused: ${resolved.problem}`,
        vanished: false,
      };
    }
    const problem = this.#checkDirs(resolved.path);
    return problem ?? resolved;
  }

  /**
   * Checks that every directory from `devices/` down to `path` is a real directory.
   * Parents are checked once and remembered; the device itself is checked each time.
   */
  #checkDirs(path: DevicePath): Resolved | undefined {
    const slash = path.lastIndexOf("/");
    if (slash > 0) {
      const parent = path.slice(0, slash);
      let state = this.#dirs.get(parent);
      if (state === undefined) {
        state = this.#checkDirs(parent) ?? true;
        this.#dirs.set(parent, state);
      }
      if (state !== true) return state;
    }
    const state = this.#checkDir(path);
    return state === true ? undefined : state;
  }

  /** Checks that `<sysfs>/devices/<prefix>` is a directory, not a symlink. */
  #checkDir(prefix: DevicePath): Resolved | true {
    const full = `${this.#sysfs}/devices/${prefix}`;
    switch (this.#fs.kind(full)) {
      case "directory":
        return true;
      case "symlink":
        return {
          problem: `"${full}" is a symlink; a device path must lead through real directories only`,
          vanished: false,
        };
      case "file":
        return { problem: `"${full}" is not a directory`, vanished: false };
      case "missing":
        return { problem: `"${full}" does not exist: the device vanished`, vanished: true };
    }
  }

  #resolveNet(ifindex: number, record: UdevProperties | undefined): Resolved {
    const name = record?.properties.get("INTERFACE");
    if (name && !name.includes("/") && name !== "." && name !== "..") {
      const resolved = this.#follow("class/net", name);
      if ("path" in resolved && this.#ifindexOf(`class/net/${name}`) === ifindex) return resolved;
      if ("problem" in resolved && !resolved.vanished) return resolved;
    }
    // No INTERFACE, or the interface was renamed since: look the index up.
    const found = this.#netIndexMap().get(ifindex);
    if (found === undefined) {
      return {
        problem: `no network interface in "${this.#sysfs}/class/net" has index ${ifindex}: ` +
          "the device vanished",
        vanished: true,
      };
    }
    return this.#follow("class/net", found);
  }

  #ifindexOf(linkPath: string): number | undefined {
    const read = readBounded(this.#fs, `${this.#sysfs}/${linkPath}/uevent`, this.#buffer);
    if (read.kind !== "ok") return undefined;
    const text = new TextDecoder().decode(read.bytes);
    const match = /^IFINDEX=(\d+)$/m.exec(text);
    return match ? Number(match[1]) : undefined;
  }

  #netIndexMap(): Map<number, string> {
    if (this.#netIndex) return this.#netIndex;
    const index = new Map<number, string>();
    const entries = this.#fs.readDir(`${this.#sysfs}/class/net`);
    for (const entry of failed(entries) ? [] : entries) {
      const ifindex = this.#ifindexOf(`class/net/${entry.name}`);
      if (ifindex !== undefined) index.set(ifindex, entry.name);
    }
    this.#netIndex = index;
    return index;
  }
}

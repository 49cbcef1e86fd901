/**
 * The LUO ABI metadata an OS image ships with each kernel:
 * `<compat.modules_dir>/<release>/liveupdate-abi`, beside the kernel's modules.
 *
 * Format (version 1): UTF-8 text of at most 4096 bytes; one `KEY=VALUE` per line;
 * blank lines and lines starting with `#` are ignored; keys are `[A-Z][A-Z0-9_]*`
 * and appear once. An RFC v1 kernel has `LUO_VERSION=MAJOR.MINOR` (decimal u32
 * each: the kernel's `LUO_VERSION_MAJOR`/`LUO_VERSION_MINOR`); a mainline kernel
 * (`/dev/liveupdate`) names its handover formats with compatible strings:
 * `LUO_COMPATIBLE` (the LUO header, which covers the session format),
 * `KHO_COMPATIBLE` (the KHO tree) and `LUO_FILE_HANDLERS` (the file handlers,
 * space-separated). At least one of `LUO_VERSION` and `LUO_COMPATIBLE` is
 * required. Other well-formed keys are kept but not interpreted, so later formats
 * can add keys without breaking older agents.
 *
 *     # LUO ABI of this kernel, read by liveupdate-agent
 *     LUO_VERSION=1.0
 *
 *     # Linux 7.3
 *     KHO_COMPATIBLE=kho-v4
 *     LUO_COMPATIBLE=luo-v5
 *     LUO_FILE_HANDLERS=memfd-v2
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import type { LuoVersion } from "../kernel/mod.ts";
import type { HandoverAbi } from "./compatible.ts";
import { errnoOf } from "../kernel/mod.ts";
import { CompatError } from "./compat_error.ts";
import { parseLuoVersion } from "./version.ts";

/** The metadata file's name inside `<modules_dir>/<release>/`. */
export const METADATA_FILE = "liveupdate-abi";
const MAX_SIZE = 4096;

/** What a metadata file says. */
export interface AbiMetadata {
  /** `LUO_VERSION` (RFC v1 kernels), or null when the file has none. */
  luoVersion: LuoVersion | null;
  /** The compatible strings (mainline kernels), or null without `LUO_COMPATIBLE`. */
  compatible: HandoverAbi | null;
  /** Every key, including LUO_VERSION. */
  keys: Record<string, string>;
}

/** A handover compatible string: a lowercase name and a version ("luo-v5", "memfd-v2"). */
export const COMPATIBLE_STRING = /^[a-z][a-z0-9_-]*-v\d+$/;

/** The metadata file of kernel `release`. */
export function metadataPath(modulesDir: string, release: string): string {
  return `${modulesDir}/${release}/${METADATA_FILE}`;
}

/** Parses a metadata file's text. Throws CompatError naming the file and line. */
export function parseAbiMetadata(text: string, file: string): AbiMetadata {
  const bad = (detail: string) =>
    new CompatError(
      `${file} is malformed: ${detail}. It must hold a line such as "LUO_VERSION=1.0" ` +
        '(RFC v1) or "LUO_COMPATIBLE=luo-v5" (mainline; see the README, "Kernel compatibility").',
      file,
    );
  if (text.length > MAX_SIZE) throw bad(`it has more than ${MAX_SIZE} characters`);
  const keys: Record<string, string> = {};
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "" || line.startsWith("#")) continue;
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!match) throw bad(`line ${index + 1} ${JSON.stringify(line)} is not KEY=VALUE`);
    const [, key, value] = match as unknown as [string, string, string];
    if (key in keys) throw bad(`line ${index + 1} sets ${key} a second time`);
    if ([...value].some((char) => char.charCodeAt(0) < 0x20)) {
      throw bad(`line ${index + 1} holds a control character`);
    }
    keys[key] = value;
  }
  const version = keys.LUO_VERSION;
  const luoCompatible = keys.LUO_COMPATIBLE;
  if (version === undefined && luoCompatible === undefined) {
    throw bad(
      "it has no LUO_VERSION line (RFC v1 kernels) and no LUO_COMPATIBLE line (mainline kernels)",
    );
  }
  let luoVersion: LuoVersion | null = null;
  if (version !== undefined) {
    luoVersion = parseLuoVersion(version) ?? null;
    if (!luoVersion) {
      throw bad(`LUO_VERSION ${JSON.stringify(version)} is not MAJOR.MINOR (decimal numbers)`);
    }
  }
  let compatible: HandoverAbi | null = null;
  if (luoCompatible !== undefined) {
    const checked = (key: string, value: string) => {
      if (!COMPATIBLE_STRING.test(value)) {
        throw bad(
          `${key} ${JSON.stringify(value)} is not a compatible string such as "luo-v5"`,
        );
      }
      return value;
    };
    const handlers = (keys.LUO_FILE_HANDLERS ?? "").split(" ").filter((word) => word !== "");
    compatible = {
      kho: keys.KHO_COMPATIBLE === undefined
        ? null
        : checked("KHO_COMPATIBLE", keys.KHO_COMPATIBLE),
      luo: checked("LUO_COMPATIBLE", luoCompatible),
      fileHandlers: [...new Set(handlers.map((h) => checked("LUO_FILE_HANDLERS", h)))],
    };
  }
  return { luoVersion, compatible, keys };
}

/**
 * Reads the metadata of kernel `release`: undefined when the file does not exist,
 * the parsed metadata otherwise. Throws CompatError when it is malformed or
 * unreadable. Needs read access to `modulesDir`.
 */
export async function readAbiMetadata(
  fs: FileSystem,
  modulesDir: string,
  release: string,
): Promise<AbiMetadata | undefined> {
  const file = metadataPath(modulesDir, release);
  let bytes: Uint8Array;
  try {
    const info = await fs.stat(file);
    if (!info.isFile) throw new CompatError(`${file} is not a regular file.`, file);
    if (info.size > MAX_SIZE) {
      throw new CompatError(`${file} is malformed: it has more than ${MAX_SIZE} bytes.`, file);
    }
    bytes = await fs.readFile(file);
  } catch (error) {
    if (error instanceof CompatError) throw error;
    if (errnoOf(error) === "ENOENT") return undefined;
    const why = errnoOf(error) ?? (error instanceof Error ? error.message : String(error));
    throw new CompatError(`${file} cannot be read (${why}).`, file, { cause: error });
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new CompatError(`${file} is malformed: it is not UTF-8 text.`, file);
  }
  return parseAbiMetadata(text, file);
}

/**
 * Kernel releases ("6.14.0-1-amd64"): of the running kernel, from the host, and of
 * the target image, from the version string in its x86 boot header (a bzImage
 * carries it: the u16 at offset 0x20E points to it, relative to 0x200), falling
 * back to the image's file name.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import { errnoOf } from "../kernel/mod.ts";

/**
 * Where the running kernel's release comes from: in production the host's
 * `ProcFacts` (`<paths.proc>/sys/kernel/osrelease`, the text `uname -r` prints),
 * so tests and the rehearsal point `paths.proc` at a prepared directory.
 */
export interface ReleaseSource {
  /** The running kernel's release (`uname -r`); throws when it cannot be read. */
  osRelease(): string;
}

const RELEASE = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/;

/**
 * Whether `text` can be a kernel release — and so a directory name below
 * `compat.modules_dir`: no "/", no leading ".", no spaces.
 */
export function isRelease(text: string): boolean {
  return RELEASE.test(text);
}

/** A release and where it came from, or why it is unknown. */
export type ReleaseFinding =
  | {
    release: string;
    source: "uname" | "image header" | "file name";
    /** A disagreement worth telling the operator (file name vs header). */
    note?: string;
  }
  | { release: null; problem: string };

/** The running kernel's release, or why it is unknown. */
export function runningRelease(source: ReleaseSource): ReleaseFinding {
  let release: string;
  try {
    release = source.osRelease();
  } catch (error) {
    return {
      release: null,
      problem: `The running kernel's release cannot be read (${
        error instanceof Error ? error.message : String(error)
      }).`,
    };
  }
  if (!isRelease(release)) {
    return {
      release: null,
      problem: `The running kernel's release ${JSON.stringify(release)} is not usable.`,
    };
  }
  return { release, source: "uname" };
}

const HEADER_MAGIC = 0x53726448; // "HdrS", little-endian at 0x202
const SETUP_START = 0x200;
const VERSION_POINTER = 0x20e;
const MAX_VERSION_STRING = 256;
/** The version string lies in the setup code: at most 0x200 + 0xffff + its length. */
const READ_LIMIT = SETUP_START + 0x10000 + MAX_VERSION_STRING;

/**
 * The version string of an x86 boot image ("6.14.0-1-amd64 (builder@host) #1 SMP …"),
 * or undefined when `bytes` (the image's start) is not a bzImage with one.
 */
export function bzImageVersionString(bytes: Uint8Array): string | undefined {
  if (bytes.length < VERSION_POINTER + 2) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0x202, true) !== HEADER_MAGIC) return undefined;
  if (view.getUint16(0x206, true) < 0x0200) return undefined;
  const pointer = view.getUint16(VERSION_POINTER, true);
  if (pointer === 0) return undefined;
  const setupSectors = bytes[0x1f1] || 4;
  const start = SETUP_START + pointer;
  const setupEnd = (setupSectors + 1) * 512;
  if (start >= setupEnd || start >= bytes.length) return undefined;
  const end = Math.min(start + MAX_VERSION_STRING, setupEnd, bytes.length);
  const nul = bytes.subarray(start, end).indexOf(0);
  if (nul <= 0) return undefined;
  const raw = bytes.subarray(start, start + nul);
  if (raw.some((byte) => byte < 0x20 || byte > 0x7e)) return undefined;
  return new TextDecoder().decode(raw);
}

function releaseFromName(image: string, modulesDir: string): string | undefined {
  const slash = image.lastIndexOf("/");
  const name = image.slice(slash + 1);
  const match = /^(?:vmlinuz|vmlinux|bzImage|Image|kernel)-(.+)$/.exec(name);
  if (match && isRelease(match[1]!)) return match[1];
  // systemd-style: <modules_dir>/<release>/vmlinuz
  const dir = image.slice(0, slash);
  const parent = dir.slice(0, dir.lastIndexOf("/"));
  const release = dir.slice(dir.lastIndexOf("/") + 1);
  if (parent === modulesDir && isRelease(release)) return release;
  return undefined;
}

async function readStart(fs: FileSystem, image: string): Promise<Uint8Array> {
  using file = await fs.open(image, { read: true });
  const buffer = new Uint8Array(READ_LIMIT);
  let filled = 0;
  while (filled < buffer.length) {
    const count = await file.read(buffer.subarray(filled));
    if (count === null) break;
    filled += count;
  }
  return buffer.subarray(0, filled);
}

/**
 * The target image's release: from the version string in its boot header when it
 * has one (the kernel's own word), else from its file name (`vmlinuz-<release>`,
 * `<modules_dir>/<release>/vmlinuz`). Notes a file name that disagrees with the
 * header. Needs read access to `image`.
 */
export async function targetRelease(
  fs: FileSystem,
  image: string,
  modulesDir: string,
): Promise<ReleaseFinding> {
  let start: Uint8Array;
  try {
    start = await readStart(fs, image);
  } catch (error) {
    const errno = errnoOf(error);
    return {
      release: null,
      problem: errno === "ENOENT"
        ? `The target kernel ${image} does not exist (target.kernel).`
        : `The target kernel ${image} cannot be read (${errno ?? String(error)}).`,
    };
  }
  const fromName = releaseFromName(image, modulesDir);
  const versionString = bzImageVersionString(start);
  const fromHeader = versionString?.split(" ")[0];
  if (fromHeader !== undefined && isRelease(fromHeader)) {
    const note = fromName !== undefined && fromName !== fromHeader
      ? `The file name of ${image} suggests release "${fromName}", but its boot header says ` +
        `"${fromHeader}"; the header is used.`
      : undefined;
    return note
      ? { release: fromHeader, source: "image header", note }
      : { release: fromHeader, source: "image header" };
  }
  if (fromName !== undefined) return { release: fromName, source: "file name" };
  return {
    release: null,
    problem: `The release of ${image} is unknown: it has no x86 boot header with a version ` +
      "string and its name is not vmlinuz-<release>; set compat.target_version.",
  };
}

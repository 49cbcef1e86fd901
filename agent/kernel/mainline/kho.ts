/**
 * The handover data of a mainline kernel as debugfs shows it
 * (`<debugfs>/kho/{out,in}/…`, CONFIG_KEXEC_HANDOVER_DEBUGFS): the KHO root tree's
 * compatible string, the LUO header (its compatible string and the
 * liveupdate number) and the kexec metadata (the previous kernel's release and
 * the number of kexecs since the last cold boot). `out` is what this kernel will
 * hand over at the next kexec; `in` is what the previous kernel handed over.
 *
 * Formats, from the 7.3 headers include/linux/kho/abi/*.h:
 * - `fdt`: a flattened device tree; the root's `compatible` ("kho-v4").
 * - `sub_fdts/LUO`: `struct luo_ser` (luo-v5): `char compatible[8]` (NUL-padded,
 *   length aligned to 8), `u64 liveupdate_num`, `u64 sessions_pa`, `u64 flbs_pa`.
 *   Older kernels (6.19, luo-v1) handed over an FDT here instead, with the
 *   compatible string and a `liveupdate-number` property at its root; both forms
 *   are read.
 * - `sub_fdts/kexec-metadata`: packed `u32 version` (1), `char
 *   previous_release[65]`, `u32 kexec_count`.
 * File-handler versions ("memfd-v2") travel inside preserved memory that debugfs
 * does not show; they come from the kernels' shipped metadata instead.
 *
 * Two traps of 7.3, seen on the real kernel: `out/fdt` is cut short (debugfs
 * keeps the size the tree had when it was registered, so the strings block and
 * with it the property names may be missing), and `in/sub_fdts/LUO` shows memory
 * the kernel freed after taking the sessions over (it soon holds anything). The
 * reader reports both as problems instead of guessing; the liveupdate number of
 * this boot is the outgoing one minus one.
 *
 * @module
 */

import { failed, type KernelFs } from "../../host/kernel_fs.ts";

/** Which side of the handover. */
export type KhoDirection = "out" | "in";

/** The handover data, as far as debugfs shows it. */
export interface KhoTree {
  direction: KhoDirection;
  /** The directory read (`<debugfs>/kho/out`). */
  directory: string;
  /** The KHO root tree's compatible string, or null when unreadable. */
  kho: string | null;
  /** The LUO header, or null when there is none or it cannot be read. */
  luo: { compatible: string; liveupdateNumber: number | null } | null;
  /**
   * Whether the tree has a LUO sub-tree at all (`sub_fdts/LUO`), readable or not: after
   * a kexec, 7.3 frees the incoming header once it took the sessions over, so `luo` is
   * null while this is true.
   */
  hasLuo: boolean;
  /** The kexec metadata, or null when absent. */
  kexec: { version: number; previousRelease: string; kexecCount: number } | null;
  /** Why parts could not be read, for `status` ("…/kho/in: not present"). */
  problems: string[];
}

/** Reading the handover data failed as a whole. */
export interface KhoUnavailable {
  direction: KhoDirection;
  directory: string;
  /** Why: debugfs not mounted, KHO debugfs not built, not a kexec boot (`in`). */
  reason: string;
}

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_PROP = 3;
const FDT_NOP = 4;

/**
 * The properties of the root node of a flattened device tree blob (stops at the
 * first child). Returns null when `blob` is not a well-formed FDT.
 */
export function fdtRootProperties(blob: Uint8Array): Map<string, Uint8Array> | null {
  if (blob.length < 40) return null;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (view.getUint32(0) !== FDT_MAGIC) return null;
  const total = view.getUint32(4);
  const structOffset = view.getUint32(8);
  const stringsOffset = view.getUint32(12);
  // Out-of-range offsets (a truncated blob) make the walk below return null.
  if (structOffset >= blob.length) return null;
  const limit = Math.min(total, blob.length);
  const cString = (offset: number): string | null => {
    const end = blob.indexOf(0, offset);
    if (offset >= limit || end < 0 || end >= limit) return null;
    return new TextDecoder().decode(blob.subarray(offset, end));
  };
  let at = structOffset;
  const u32 = () => {
    if (at + 4 > limit) throw new RangeError("past end");
    const value = view.getUint32(at);
    at += 4;
    return value;
  };
  try {
    while (u32() === FDT_NOP) { /* skip */ }
    // The first token must be the root's BEGIN_NODE (already consumed above).
    at -= 4;
    if (u32() !== FDT_BEGIN_NODE) return null;
    const nameEnd = blob.indexOf(0, at);
    if (nameEnd < 0 || nameEnd >= limit) return null;
    at = (nameEnd + 4) & ~3;
    const properties = new Map<string, Uint8Array>();
    while (true) {
      const token = u32();
      if (token === FDT_NOP) continue;
      if (token !== FDT_PROP) return properties;
      const length = u32();
      const nameOffset = u32();
      if (at + length > limit) return null;
      const name = cString(stringsOffset + nameOffset);
      if (name === null) return null;
      properties.set(name, blob.slice(at, at + length));
      at = (at + length + 3) & ~3;
    }
  } catch {
    return null;
  }
}

/** The first string of a string(-list) property value. */
function firstString(value: Uint8Array | undefined): string | null {
  if (!value || value.length === 0) return null;
  const end = value.indexOf(0);
  return new TextDecoder().decode(end < 0 ? value : value.subarray(0, end));
}

/** Parses the LUO header blob (`sub_fdts/LUO`), raw struct or FDT. */
export function parseLuoHeader(
  blob: Uint8Array,
): { compatible: string; liveupdateNumber: number | null } | null {
  const properties = fdtRootProperties(blob);
  if (properties) {
    const compatible = firstString(properties.get("compatible"));
    if (compatible === null) return null;
    const number = properties.get("liveupdate-number");
    let liveupdateNumber: number | null = null;
    if (number?.length === 8) {
      liveupdateNumber = Number(new DataView(number.buffer).getBigUint64(0, true));
    }
    return { compatible, liveupdateNumber };
  }
  const end = blob.indexOf(0);
  if (end <= 0) return null;
  const compatible = new TextDecoder().decode(blob.subarray(0, end));
  if (!/^luo-v\d+$/.test(compatible)) return null;
  const numberAt = (end + 1 + 7) & ~7;
  let liveupdateNumber: number | null = null;
  if (blob.length >= numberAt + 8) {
    liveupdateNumber = Number(
      new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getBigUint64(numberAt, true),
    );
  }
  return { compatible, liveupdateNumber };
}

/** Parses `sub_fdts/kexec-metadata` (struct kho_kexec_metadata, version 1). */
export function parseKexecMetadata(
  blob: Uint8Array,
): { version: number; previousRelease: string; kexecCount: number } | null {
  if (blob.length < 4 + 65 + 4) return null;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const version = view.getUint32(0, true);
  if (version !== 1) return { version, previousRelease: "", kexecCount: 0 };
  const release = blob.subarray(4, 4 + 65);
  const end = release.indexOf(0);
  return {
    version,
    previousRelease: new TextDecoder().decode(end < 0 ? release : release.subarray(0, end)),
    kexecCount: view.getUint32(4 + 65, true),
  };
}

/** The largest blob read from debugfs (the trees are a few pages). */
const BLOB_LIMIT = 4 * 1024 * 1024;

/**
 * Reads `<debugfs>/kho/<direction>` through the kernel's files (libc in
 * production: Deno refuses debugfs). Needs read access to debugfs (root).
 * Returns KhoUnavailable when the directory is missing (debugfs not mounted,
 * KHO debugfs not built, or — for `in` — not a kexec boot with KHO).
 */
export function readKhoTree(
  fs: KernelFs,
  debugfs: string,
  direction: KhoDirection,
): KhoTree | KhoUnavailable {
  const directory = `${debugfs}/kho/${direction}`;
  const info = fs.stat(directory);
  if (failed(info) || info.type !== "directory") {
    const missing = failed(info) ? info.errno === "ENOENT" || info.errno === "ENOTDIR" : false;
    return {
      direction,
      directory,
      reason: missing
        ? direction === "in"
          ? "not present: this boot was not a kexec with KHO (or debugfs is not mounted)"
          : "not present: KHO is off, CONFIG_KEXEC_HANDOVER_DEBUGFS is not built, or debugfs " +
            "is not mounted"
        : failed(info)
        ? `not readable (${info.errno})`
        : "not a directory",
    };
  }
  const problems: string[] = [];
  const read = (name: string): Uint8Array | null => {
    const bytes = fs.readFile(`${directory}/${name}`, BLOB_LIMIT);
    if (!failed(bytes)) return bytes;
    problems.push(
      `${directory}/${name}: ${
        bytes.errno === "ENOENT" ? "not present" : `not readable (${bytes.errno})`
      }`,
    );
    return null;
  };
  const fdt = read("fdt");
  let kho: string | null = null;
  if (fdt) {
    kho = firstString(fdtRootProperties(fdt)?.get("compatible"));
    if (kho === null) {
      const total = fdt.length >= 8
        ? new DataView(fdt.buffer, fdt.byteOffset, fdt.byteLength).getUint32(4)
        : 0;
      problems.push(
        total > fdt.length
          ? `${directory}/fdt: debugfs shows ${fdt.length} of its ${total} bytes, too few to read ` +
            "the compatible string"
          : `${directory}/fdt: not a device tree with a compatible string`,
      );
    }
  }
  const luoBlob = read("sub_fdts/LUO");
  const luo = luoBlob ? parseLuoHeader(luoBlob) : null;
  if (luoBlob && !luo) {
    problems.push(
      direction === "in"
        ? `${directory}/sub_fdts/LUO: no longer a LUO header (the kernel frees it once it has ` +
          "taken the sessions over)"
        : `${directory}/sub_fdts/LUO: not a LUO header`,
    );
  }
  const metadataBlob = read("sub_fdts/kexec-metadata");
  const kexec = metadataBlob ? parseKexecMetadata(metadataBlob) : null;
  return { direction, directory, kho, luo, hasLuo: luoBlob !== null, kexec, problems };
}

/** Whether a read gave the tree (rather than a reason it could not). */
export function isKhoTree(value: KhoTree | KhoUnavailable): value is KhoTree {
  return "problems" in value;
}

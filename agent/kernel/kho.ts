/**
 * Reading what the previous kernel handed over through KHO (Kexec HandOver): the
 * incoming device tree that debugfs exposes at `<debugfs>/kho/in/fdt` (with any
 * sub-trees in `<debugfs>/kho/in/sub_fdts/`), and in it the LUO's node
 * `liveupdate_orchestrator` with its 8-byte `version` property
 * (`struct { u32 major; u32 minor; }` in the kernel's native byte order).
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { failed, type KernelFs } from "../host/mod.ts";
import { FdtError, type FdtNode, findNodes, parseFdt } from "./fdt.ts";
import type { IncomingHandover, LuoVersion } from "./kernel.ts";

/** The orchestrator's node name in the KHO tree. */
export const LUO_NODE = "liveupdate_orchestrator";
/** Its version property. */
export const LUO_VERSION_PROPERTY = "version";
/** The largest incoming tree the agent reads (KHO trees are a few pages). */
const MAX_BLOB = 16 * 1024 * 1024;

/** The incoming KHO data is there but malformed. */
export class HandoverError extends AgentError {
  override name = "HandoverError";
  readonly file: string;

  constructor(message: string, file: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.file = file;
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Decodes the `version` property: exactly 8 bytes, two u32 in native byte order.
 * Throws HandoverError otherwise (the new kernel panics on any other length).
 */
export function decodeLuoVersion(value: Uint8Array, file: string): LuoVersion {
  if (value.length !== 8) {
    throw new HandoverError(
      `The "${LUO_VERSION_PROPERTY}" property of ${LUO_NODE} in ${file} has ${value.length} ` +
        "bytes, not 8 ({u32 major; u32 minor}); the previous kernel wrote a handover this " +
        "agent does not understand.",
      file,
    );
  }
  const view = new DataView(value.buffer, value.byteOffset, 8);
  return { major: view.getUint32(0, LITTLE_ENDIAN), minor: view.getUint32(4, LITTLE_ENDIAN) };
}

/** The orchestrator node of a parsed tree, if any. Throws HandoverError if there are several. */
function orchestrator(root: FdtNode, file: string): FdtNode | undefined {
  const nodes = findNodes(root, LUO_NODE);
  if (nodes.length > 1) {
    throw new HandoverError(`${file} holds ${nodes.length} ${LUO_NODE} nodes, expected one.`, file);
  }
  return nodes[0];
}

/** The blob in `file`, or the errno of the failed read. Throws HandoverError when too large. */
function readBlob(fs: KernelFs, file: string): Uint8Array | string {
  const blob = fs.readFile(file, MAX_BLOB);
  if (!failed(blob)) return blob;
  if (blob.errno === "EFBIG") {
    throw new HandoverError(
      `${file} has more than ${MAX_BLOB} bytes, more than a KHO tree can.`,
      file,
    );
  }
  return blob.errno;
}

function parseBlob(blob: Uint8Array, file: string): FdtNode {
  try {
    return parseFdt(blob).root;
  } catch (error) {
    if (error instanceof FdtError) {
      throw new HandoverError(`${file} is not a valid device tree: ${error.message}.`, file, {
        cause: error,
      });
    }
    throw error;
  }
}

function found(node: FdtNode, file: string): IncomingHandover {
  const value = node.properties.get(LUO_VERSION_PROPERTY);
  return {
    status: "present",
    file,
    node: node.name,
    version: value === undefined ? null : decodeLuoVersion(value, file),
  };
}

/**
 * Reads the incoming KHO data below `debugfs` and finds the orchestrator node.
 * "unavailable" when debugfs or its KHO files cannot be read; "absent" when the
 * data is there without the node (an ordinary boot). Throws HandoverError for a
 * malformed tree or version. Reads through `fs` (libc in production: debugfs lives
 * under /sys, which Deno's file API refuses under scoped permissions).
 */
export function readIncomingHandover(fs: KernelFs, debugfs: string): Promise<IncomingHandover> {
  try {
    return Promise.resolve(readIncoming(fs, debugfs));
  } catch (error) {
    return Promise.reject(error);
  }
}

function readIncoming(fs: KernelFs, debugfs: string): IncomingHandover {
  const dir = `${debugfs}/kho/in`;
  const file = `${dir}/fdt`;
  const blob = readBlob(fs, file);
  if (typeof blob === "string") {
    const errno = blob;
    if (errno === "ENOENT") {
      const kho = fs.stat(`${debugfs}/kho`);
      if (!failed(kho) && kho.type === "directory") {
        return {
          status: "absent",
          file,
          detail: `No ${file}: the kernel received no KHO handover (an ordinary boot).`,
        };
      }
      return {
        status: "unavailable",
        file,
        detail: `No ${debugfs}/kho: debugfs is not mounted at ${debugfs} (paths.debugfs) or ` +
          "the kernel was built without KHO's debugfs files (CONFIG_KEXEC_HANDOVER_DEBUGFS).",
      };
    }
    return { status: "unavailable", file, detail: `${file} cannot be read (${errno}).` };
  }
  const node = orchestrator(parseBlob(blob, file), file);
  if (node) return found(node, file);

  // Mainline KHO keeps each user's tree in its own blob under sub_fdts/.
  const subDir = `${dir}/sub_fdts`;
  const listed = fs.readDir(subDir);
  // None (a failure): the whole handover is in fdt.
  const entries = failed(listed) ? [] : listed.map((entry) => entry.name);
  for (const name of entries.sort()) {
    const subFile = `${subDir}/${name}`;
    const sub = readBlob(fs, subFile);
    if (typeof sub === "string") continue;
    if (sub.length < 4 || new DataView(sub.buffer, sub.byteOffset).getUint32(0) !== 0xd00dfeed) {
      continue; // not every KHO blob is a device tree
    }
    const subNode = orchestrator(parseBlob(sub, subFile), subFile);
    if (subNode) return found(subNode, subFile);
  }
  return {
    status: "absent",
    file,
    detail: `${file} holds no ${LUO_NODE} node: the previous kernel handed over no live update.`,
  };
}

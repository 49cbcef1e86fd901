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
import type { FileSystem } from "../host/mod.ts";
import { FdtError, type FdtNode, findNodes, parseFdt } from "./fdt.ts";
import type { IncomingHandover, LuoVersion } from "./kernel.ts";
import { errnoOf } from "./kernel_failure.ts";

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

async function readBlob(fs: FileSystem, file: string): Promise<Uint8Array> {
  const info = await fs.stat(file);
  if (info.size > MAX_BLOB) {
    throw new HandoverError(`${file} has ${info.size} bytes, more than a KHO tree can.`, file);
  }
  return await fs.readFile(file);
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

async function exists(fs: FileSystem, path: string): Promise<boolean> {
  try {
    await fs.stat(path);
    return true;
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return false;
    throw error;
  }
}

/**
 * Reads the incoming KHO data below `debugfs` and finds the orchestrator node.
 * "unavailable" when debugfs or its KHO files cannot be read; "absent" when the
 * data is there without the node (an ordinary boot). Throws HandoverError for a
 * malformed tree or version. Needs read access to `debugfs`.
 */
export async function readIncomingHandover(
  fs: FileSystem,
  debugfs: string,
): Promise<IncomingHandover> {
  const dir = `${debugfs}/kho/in`;
  const file = `${dir}/fdt`;
  let blob: Uint8Array;
  try {
    blob = await readBlob(fs, file);
  } catch (error) {
    if (error instanceof HandoverError) throw error;
    const errno = errnoOf(error);
    if (errno === "ENOENT") {
      try {
        if (await exists(fs, `${debugfs}/kho`)) {
          return {
            status: "absent",
            file,
            detail: `No ${file}: the kernel received no KHO handover (an ordinary boot).`,
          };
        }
      } catch {
        // fall through: unreadable
      }
      return {
        status: "unavailable",
        file,
        detail: `No ${debugfs}/kho: debugfs is not mounted at ${debugfs} (paths.debugfs) or ` +
          "the kernel was built without KHO's debugfs files (CONFIG_KEXEC_HANDOVER_DEBUGFS).",
      };
    }
    const why = errno ?? (error instanceof Error ? error.message : String(error));
    return { status: "unavailable", file, detail: `${file} cannot be read (${why}).` };
  }
  const node = orchestrator(parseBlob(blob, file), file);
  if (node) return found(node, file);

  // Mainline KHO keeps each user's tree in its own blob under sub_fdts/.
  const subDir = `${dir}/sub_fdts`;
  const entries: string[] = [];
  try {
    for await (const entry of fs.readDir(subDir)) entries.push(entry.name);
  } catch {
    // none: the whole handover is in fdt
  }
  for (const name of entries.sort()) {
    const subFile = `${subDir}/${name}`;
    let sub: Uint8Array;
    try {
      sub = await readBlob(fs, subFile);
    } catch (error) {
      if (error instanceof HandoverError) throw error;
      continue;
    }
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

/**
 * A small, strict reader of flattened device tree blobs (the "DTB" format of the
 * devicetree specification, versions 16 and 17), as KHO hands them between
 * kernels. No npm package parses FDT blobs, so the agent has its own. Every
 * offset and length is checked against the blob before it is used; a malformed
 * blob gives an {@link FdtError} naming the offset, never an exception of another
 * kind, an endless loop or a huge allocation.
 *
 * @module
 */

import { AgentError } from "../errors.ts";

/** The magic number at the start of every blob. */
export const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;
const HEADER_SIZE = 40;
/** Deeper nesting than any real tree; bounds the work on a hostile blob. */
const MAX_DEPTH = 64;

/** A device tree blob the reader cannot use. */
export class FdtError extends AgentError {
  override name = "FdtError";
  /** The byte offset in the blob where the problem was found. */
  readonly offset: number;

  constructor(message: string, offset: number) {
    super(`${message} (at byte ${offset})`);
    this.offset = offset;
  }
}

/** One node: its name (with any unit address, "memory@0"), properties and children. */
export interface FdtNode {
  name: string;
  /** Property values, as raw bytes (views into a copy of the blob). */
  properties: Map<string, Uint8Array>;
  children: FdtNode[];
}

/** A parsed blob. */
export interface Fdt {
  version: number;
  root: FdtNode;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

class Reader {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u32(offset: number, end: number, what: string): number {
    if (offset < 0 || offset + 4 > end) throw new FdtError(`${what} runs past its block`, offset);
    return this.view.getUint32(offset, false);
  }

  /** A NUL-terminated string starting at `offset`, ending before `end`. */
  string(offset: number, end: number, what: string): { text: string; next: number } {
    if (offset < 0 || offset >= end) throw new FdtError(`${what} starts past its block`, offset);
    const nul = this.bytes.subarray(offset, end).indexOf(0);
    if (nul < 0) throw new FdtError(`${what} has no terminating NUL`, offset);
    let text: string;
    try {
      text = decoder.decode(this.bytes.subarray(offset, offset + nul));
    } catch {
      throw new FdtError(`${what} is not valid UTF-8`, offset);
    }
    return { text, next: offset + nul + 1 };
  }
}

const align4 = (n: number) => (n + 3) & ~3;

/**
 * Parses a flattened device tree blob. Throws FdtError for anything malformed:
 * wrong magic, an unsupported version, a header that points outside the blob, a
 * truncated or unbalanced structure block, a property name outside the strings
 * block.
 */
export function parseFdt(blob: Uint8Array): Fdt {
  // Copy, so property values stay valid whatever the caller does with `blob`.
  const bytes = blob.slice();
  const reader = new Reader(bytes);
  if (bytes.length < HEADER_SIZE) {
    throw new FdtError(`Blob of ${bytes.length} bytes is shorter than an FDT header`, 0);
  }
  const magic = reader.u32(0, HEADER_SIZE, "magic");
  if (magic !== FDT_MAGIC) {
    throw new FdtError(`Magic 0x${magic.toString(16)} is not an FDT's 0xd00dfeed`, 0);
  }
  const totalSize = reader.u32(4, HEADER_SIZE, "totalsize");
  const structOffset = reader.u32(8, HEADER_SIZE, "off_dt_struct");
  const stringsOffset = reader.u32(12, HEADER_SIZE, "off_dt_strings");
  const version = reader.u32(20, HEADER_SIZE, "version");
  const lastCompatible = reader.u32(24, HEADER_SIZE, "last_comp_version");
  const stringsSize = reader.u32(32, HEADER_SIZE, "size_dt_strings");
  if (totalSize < HEADER_SIZE || totalSize > bytes.length) {
    throw new FdtError(
      `Header says the blob has ${totalSize} bytes, but ${bytes.length} are there (truncated?)`,
      4,
    );
  }
  if (version < 16 || lastCompatible > 17) {
    throw new FdtError(
      `FDT version ${version} (compatible with ${lastCompatible}) is not supported; ` +
        "expected version 16 or 17",
      20,
    );
  }
  const structSize = version >= 17
    ? reader.u32(36, HEADER_SIZE, "size_dt_struct")
    : totalSize - structOffset;
  const blockEnd = (offset: number, size: number, what: string, at: number) => {
    if (offset < HEADER_SIZE || offset > totalSize || size > totalSize - offset) {
      throw new FdtError(`The ${what} block (${offset}+${size}) lies outside the blob`, at);
    }
    return offset + size;
  };
  const structEnd = blockEnd(structOffset, structSize, "structure", 8);
  const stringsEnd = blockEnd(stringsOffset, stringsSize, "strings", 12);
  if (structOffset % 4 !== 0) {
    throw new FdtError(`The structure block offset ${structOffset} is not 4-byte aligned`, 8);
  }

  const stack: FdtNode[] = [];
  let root: FdtNode | undefined;
  let offset = structOffset;
  while (true) {
    const token = reader.u32(offset, structEnd, "token");
    const at = offset;
    offset += 4;
    if (token === FDT_NOP) continue;
    if (token === FDT_BEGIN_NODE) {
      if (root && stack.length === 0) throw new FdtError("A second root node", at);
      if (stack.length >= MAX_DEPTH) throw new FdtError(`Nodes nest deeper than ${MAX_DEPTH}`, at);
      const { text, next } = reader.string(offset, structEnd, "node name");
      offset = align4(next);
      const node: FdtNode = { name: text, properties: new Map(), children: [] };
      if (stack.length === 0) root = node;
      else stack[stack.length - 1]!.children.push(node);
      stack.push(node);
    } else if (token === FDT_END_NODE) {
      if (stack.length === 0) throw new FdtError("END_NODE without a node", at);
      stack.pop();
    } else if (token === FDT_PROP) {
      const node = stack[stack.length - 1];
      if (!node) throw new FdtError("A property outside any node", at);
      const length = reader.u32(offset, structEnd, "property length");
      const nameOffset = reader.u32(offset + 4, structEnd, "property name offset");
      offset += 8;
      if (length > structEnd - offset) {
        throw new FdtError(`Property value of ${length} bytes runs past the structure block`, at);
      }
      if (nameOffset >= stringsSize) {
        throw new FdtError(`Property name offset ${nameOffset} lies outside the strings block`, at);
      }
      const { text } = reader.string(stringsOffset + nameOffset, stringsEnd, "property name");
      node.properties.set(text, bytes.subarray(offset, offset + length));
      offset = align4(offset + length);
    } else if (token === FDT_END) {
      if (stack.length !== 0) throw new FdtError("END before every node was closed", at);
      if (!root) throw new FdtError("No root node", at);
      return { version, root };
    } else {
      throw new FdtError(`Unknown token 0x${token.toString(16)}`, at);
    }
    if (offset > structEnd) throw new FdtError("The structure block ends inside a token", at);
  }
}

/** Every node named `name` (ignoring any "@unit-address"), depth first. */
export function findNodes(root: FdtNode, name: string): FdtNode[] {
  const found: FdtNode[] = [];
  const visit = (node: FdtNode) => {
    const base = node.name.includes("@") ? node.name.slice(0, node.name.indexOf("@")) : node.name;
    if (base === name) found.push(node);
    for (const child of node.children) visit(child);
  };
  visit(root);
  return found;
}

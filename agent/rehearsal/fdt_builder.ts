/**
 * Builds flattened device tree blobs: the incoming KHO tree a kernel hands over
 * (the rehearsal's simulated handover after its kexec) and, for tests,
 * deliberately broken variants of it.
 *
 * @module
 */

/** A node to build: its properties (raw bytes or a string, stored NUL-terminated) and children. */
export interface BuildNode {
  name: string;
  properties?: Record<string, Uint8Array | string>;
  children?: BuildNode[];
}

const encoder = new TextEncoder();

function pad4(bytes: number[]): void {
  while (bytes.length % 4) bytes.push(0);
}

function pushU32(bytes: number[], value: number): void {
  bytes.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

/** Options of {@link buildFdt}. */
export interface BuildOptions {
  /** FDT version written in the header (17 by default). */
  version?: number;
}

/** A version-17 FDT blob of `root` (laid out as libfdt's sequential writer does). */
export function buildFdt(root: BuildNode, options: BuildOptions = {}): Uint8Array {
  const strings: number[] = [];
  const stringOffsets = new Map<string, number>();
  const nameOffset = (name: string) => {
    let offset = stringOffsets.get(name);
    if (offset === undefined) {
      offset = strings.length;
      strings.push(...encoder.encode(name), 0);
      stringOffsets.set(name, offset);
    }
    return offset;
  };
  const struct: number[] = [];
  const visit = (node: BuildNode) => {
    pushU32(struct, 1);
    struct.push(...encoder.encode(node.name), 0);
    pad4(struct);
    for (const [name, raw] of Object.entries(node.properties ?? {})) {
      const value = typeof raw === "string" ? [...encoder.encode(raw), 0] : [...raw];
      pushU32(struct, 3);
      pushU32(struct, value.length);
      pushU32(struct, nameOffset(name));
      struct.push(...value);
      pad4(struct);
    }
    for (const child of node.children ?? []) visit(child);
    pushU32(struct, 2);
  };
  visit(root);
  pushU32(struct, 9);

  const memRsvOffset = 40;
  const memRsvSize = 16; // one terminating all-zero entry
  const structOffset = memRsvOffset + memRsvSize;
  const stringsOffset = structOffset + struct.length;
  const totalSize = stringsOffset + strings.length;
  const header: number[] = [];
  for (
    const value of [
      0xd00dfeed,
      totalSize,
      structOffset,
      stringsOffset,
      memRsvOffset,
      options.version ?? 17,
      16,
      0,
      strings.length,
      struct.length,
    ]
  ) pushU32(header, value);
  return new Uint8Array([...header, ...new Array(memRsvSize).fill(0), ...struct, ...strings]);
}

/** The 8-byte `version` property as the kernel writes it: two u32 in native byte order. */
export function versionProperty(major: number, minor: number): Uint8Array {
  return new Uint8Array(new Uint32Array([major, minor]).buffer);
}

/** An incoming KHO tree holding the orchestrator node with `version`, as RFC v1 leaves it. */
export function khoTree(version: Uint8Array | null = versionProperty(1, 0)): Uint8Array {
  return buildFdt({
    name: "",
    properties: { compatible: "kho-v1" },
    children: [
      { name: "memblock", properties: { compatible: "memblock-v1" } },
      {
        name: "liveupdate_orchestrator",
        properties: version ? { version } : {},
      },
    ],
  });
}

/** An incoming KHO tree without the orchestrator node: a kernel booted normally, with KHO. */
export function khoTreeWithoutLuo(): Uint8Array {
  return buildFdt({
    name: "",
    properties: { compatible: "kho-v1" },
    children: [{ name: "memblock", properties: { compatible: "memblock-v1" } }],
  });
}

/**
 * Builds small flattened device tree blobs for tests (root properties only).
 *
 * @module
 */

/** A blob whose root node has `properties` (string values get a NUL). */
export function buildFdt(properties: Record<string, string | Uint8Array>): Uint8Array<ArrayBuffer> {
  const strings: number[] = [];
  const struct: number[] = [];
  const u32 = (list: number[], value: number) =>
    list.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  const pad = (list: number[]) => {
    while (list.length % 4) list.push(0);
  };
  u32(struct, 1); // BEGIN_NODE ""
  struct.push(0);
  pad(struct);
  for (const [name, raw] of Object.entries(properties)) {
    const value = typeof raw === "string" ? new TextEncoder().encode(raw + "\0") : raw;
    const nameOffset = strings.length;
    strings.push(...new TextEncoder().encode(name), 0);
    u32(struct, 3);
    u32(struct, value.length);
    u32(struct, nameOffset);
    struct.push(...value);
    pad(struct);
  }
  u32(struct, 2); // END_NODE
  u32(struct, 9); // END
  const header = 40;
  const reserve = 16;
  const structOffset = header + reserve;
  const stringsOffset = structOffset + struct.length;
  const total = stringsOffset + strings.length;
  const blob = new Uint8Array(total);
  const view = new DataView(blob.buffer);
  [0xd00dfeed, total, structOffset, stringsOffset, header, 17, 16, 0, strings.length, struct.length]
    .forEach((value, index) => view.setUint32(index * 4, value));
  blob.set(struct, structOffset);
  blob.set(strings, stringsOffset);
  return blob;
}

/**
 * Hostile flattened device trees in debugfs's KHO path (`kho/in/fdt` and
 * `kho/in/sub_fdts/*`): truncated, with a header pointing outside the blob,
 * unbalanced, deeply nested, with a wrong-sized version, huge, or not files.
 * `status` must say the handover is invalid (naming the file and the byte) and
 * carry on; nothing may crash, loop or allocate without bound.
 *
 * @module
 */

import { buildFdt, type BuildNode, khoTree, versionProperty } from "../kho/fdt_builder.ts";
import {
  type CaseTable,
  EXIT,
  garbage,
  type HostileCase,
  plant,
  plantDir,
  plantFifo,
  plantLink,
} from "./_case.ts";
import type { HostileHost } from "./_host.ts";

const fdt = (host: HostileHost) => `${host.debugfs}/kho/in/fdt`;

/** The good tree with `edit` applied to a copy. */
function mutated(edit: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const bytes = khoTree().slice();
  edit(new DataView(bytes.buffer), bytes);
  return bytes;
}

/** Offsets of the header fields. */
const H = {
  magic: 0,
  total: 4,
  struct: 8,
  strings: 12,
  version: 20,
  lastComp: 24,
  stringsSize: 32,
  structSize: 36,
};
const structStart = (view: DataView) => view.getUint32(H.struct);

/** A blob at kho/in/fdt that `status` must call invalid, with `says` in the detail. */
function invalid(name: string, blob: Uint8Array | (() => Uint8Array), says: RegExp): HostileCase {
  return {
    name,
    setup: (host) => plant(fdt(host), typeof blob === "function" ? blob() : blob),
    argv: ["status", "--json"],
    code: EXIT.ok,
    stdout: new RegExp(`"status": "invalid"[\\s\\S]*"detail": ".*${says.source}`),
  };
}

const nested = (depth: number): BuildNode => {
  let node: BuildNode = { name: "leaf" };
  for (let i = 0; i < depth; i++) node = { name: `n${i}`, children: [node] };
  return { name: "", children: [node] };
};

/** The FDT cases. */
export const FDT_CASES: CaseTable = {
  category: "fdt",
  cases: [
    invalid("empty", new Uint8Array(), /shorter than an FDT header/),
    invalid("ten bytes", garbage(10, 2), /shorter than an FDT header/),
    invalid("random bytes", garbage(4096, 41), /Magic 0x[0-9a-f]+ is not an FDT's 0xd00dfeed/),
    invalid("a wrong magic", mutated((v) => v.setUint32(H.magic, 0xfeedd00d)), /Magic 0xfeedd00d/),
    invalid("version 15", mutated((v) => v.setUint32(H.version, 15)), /FDT version 15/),
    invalid(
      "last compatible version 18",
      mutated((v) => v.setUint32(H.lastComp, 18)),
      /compatible with 18/,
    ),
    invalid(
      "a total size beyond the blob",
      mutated((v) => v.setUint32(H.total, 0xffffffff)),
      /Header says the blob has 4294967295 bytes/,
    ),
    invalid(
      "a total size below the header",
      mutated((v) => v.setUint32(H.total, 8)),
      /Header says the blob has 8 bytes/,
    ),
    invalid(
      "a structure block outside the blob",
      mutated((v) => v.setUint32(H.struct, 0x7fffffff)),
      /structure block .* lies outside the blob/,
    ),
    invalid(
      "a strings block outside the blob",
      mutated((v) => v.setUint32(H.strings, 0x7fffffff)),
      /strings block .* lies outside the blob/,
    ),
    invalid(
      "a structure size that overflows",
      mutated((v) => v.setUint32(H.structSize, 0xfffffff0)),
      /structure block .* lies outside the blob/,
    ),
    invalid(
      "a misaligned structure block",
      mutated((v) => v.setUint32(H.struct, structStart(v) + 1)),
      /not 4-byte aligned|Unknown token|runs past/,
    ),
    invalid(
      "an unknown token",
      mutated((v) => v.setUint32(structStart(v), 0x77)),
      /Unknown token 0x77/,
    ),
    invalid(
      "END_NODE first",
      mutated((v) => v.setUint32(structStart(v), 2)),
      /END_NODE without a node/,
    ),
    invalid(
      "a property before any node",
      mutated((v) => v.setUint32(structStart(v), 3)),
      /A property outside any node|runs past/,
    ),
    invalid("END straight away", mutated((v) => v.setUint32(structStart(v), 9)), /No root node/),
    invalid(
      "a truncated blob",
      () => khoTree().slice(0, 80),
      /Header says the blob has \d+ bytes, but 80 are there/,
    ),
    invalid(
      "a property length beyond the block",
      () =>
        mutated((view, bytes) => {
          // The first property of the root: BEGIN_NODE "" (8 bytes), then PROP len.
          const at = structStart(view) + 8;
          if (view.getUint32(at) !== 3) throw new Error(`no property at ${at} (${bytes.length})`);
          view.setUint32(at + 4, 0x7ffffff0);
        }),
      /Property value of \d+ bytes runs past the structure block/,
    ),
    invalid(
      "a property name outside the strings block",
      () =>
        mutated((view) => {
          const at = structStart(view) + 8;
          view.setUint32(at + 8, 0x7ffffff0);
        }),
      /Property name offset \d+ lies outside the strings block/,
    ),
    invalid(
      "a node name without its NUL",
      () =>
        mutated((view, bytes) => {
          const start = structStart(view);
          bytes.fill(0x41, start + 4, view.getUint32(H.strings));
        }),
      /node name has no terminating NUL|Unknown token|END before/,
    ),
    invalid(
      "a node name that is not UTF-8",
      () => {
        const blob = buildFdt({ name: "", children: [{ name: "Zz" }] });
        const at = blob.findIndex((byte, i) => byte === 0x5a && blob[i + 1] === 0x7a);
        blob[at] = 0xff;
        blob[at + 1] = 0xfe;
        return blob;
      },
      /node name is not valid UTF-8/,
    ),
    invalid("nodes nested 100 deep", () => buildFdt(nested(100)), /Nodes nest deeper than 64/),
    invalid("a second root node", () => {
      const one = buildFdt({ name: "" });
      const view = new DataView(one.buffer);
      // BEGIN_NODE "" END_NODE twice, then END: rewrite as two roots.
      const start = view.getUint32(H.struct);
      const tokens = one.slice(start, start + 12); // BEGIN "" (8) + END_NODE (4)
      const body = new Uint8Array([...tokens, ...tokens, 0, 0, 0, 9]);
      const blob = new Uint8Array(start + body.length + 1);
      blob.set(one.slice(0, start));
      blob.set(body, start);
      const out = new DataView(blob.buffer);
      out.setUint32(H.total, blob.length);
      out.setUint32(H.strings, start + body.length);
      out.setUint32(H.stringsSize, 1);
      out.setUint32(H.structSize, body.length);
      return blob;
    }, /A second root node/),
    invalid(
      "a version property of 4 bytes",
      () => khoTree(new Uint8Array(4)),
      /has 4 bytes, not 8/,
    ),
    invalid(
      "a version property of 0 bytes",
      () => khoTree(new Uint8Array(0)),
      /has 0 bytes, not 8/,
    ),
    invalid(
      "two orchestrator nodes",
      () =>
        buildFdt({
          name: "",
          children: [
            { name: "liveupdate_orchestrator", properties: { version: versionProperty(1, 0) } },
            { name: "liveupdate_orchestrator@1", properties: { version: versionProperty(2, 0) } },
          ],
        }),
      /holds 2 liveupdate_orchestrator nodes, expected one/,
    ),
    {
      name: "a blob larger than 16 MiB",
      setup: async (host) => {
        await plant(fdt(host), "");
        await Deno.truncate(fdt(host), 17 * 1024 * 1024);
      },
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /has more than 16777216 bytes, more than a KHO tree can/,
    },
    {
      name: "the blob is a FIFO",
      setup: (host) => plantFifo(fdt(host)),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /"handover": \{\s*"status": "(unavailable|invalid)"/,
      strace: true,
    },
    {
      name: "the blob is a directory",
      setup: (host) => plantDir(fdt(host)),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /"handover": \{\s*"status": "unavailable"[\s\S]*cannot be read \(EISDIR\)/,
    },
    {
      name: "the blob is a symlink loop",
      setup: (host) => plantLink(fdt(host), fdt(host)),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /cannot be read \(ELOOP\)/,
    },
    {
      name: "a garbage sub-tree beside a tree without the node",
      setup: async (host) => {
        await plant(fdt(host), buildFdt({ name: "", children: [{ name: "memblock" }] }));
        const bad = mutated((v) => v.setUint32(structStartOf(v), 0x66));
        await plant(`${host.debugfs}/kho/in/sub_fdts/LUO`, bad);
      },
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /sub_fdts\/LUO is not a valid device tree: Unknown token 0x66/,
    },
    {
      name: "a FIFO among the sub-trees",
      setup: async (host) => {
        await plant(fdt(host), buildFdt({ name: "", children: [{ name: "memblock" }] }));
        await plantFifo(`${host.debugfs}/kho/in/sub_fdts/LUO`);
      },
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /"handover": \{\s*"status": "absent"/,
    },
  ],
};

function structStartOf(view: DataView): number {
  return view.getUint32(H.struct);
}

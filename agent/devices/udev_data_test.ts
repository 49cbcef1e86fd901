import assert from "node:assert/strict";
import { isUdevDataProblem, parseUdevData, udevFacts, type UdevRecord } from "./udev_data.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function parse(text: string, keep?: ReadonlySet<string>): UdevRecord {
  const record = parseUdevData(bytes(text), keep);
  if (isUdevDataProblem(record)) assert.fail(`unexpected problem: ${record.problem}`);
  return record;
}

function problem(text: string | Uint8Array): { line: number; problem: string } {
  const record = parseUdevData(typeof text === "string" ? bytes(text) : text);
  if (!isUdevDataProblem(record)) assert.fail("expected a problem");
  return record;
}

// As systemd-udevd 252 writes it (block device with links and both tag kinds).
const DISK = [
  "S:disk/by-id/nvme-Samsung_SSD_980_S64DNX0R123456",
  "S:disk/by-path/pci-0000:01:00.0-nvme-1",
  "L:0",
  "I:5107823",
  "E:ID_SERIAL=Samsung_SSD_980_S64DNX0R123456",
  "E:ID_PATH=pci-0000:01:00.0-nvme-1",
  "E:LIVEUPDATE_UNIT=vm@storage.service",
  "E:ID_FS_LABEL=data disk",
  "G:systemd",
  "G:liveupdate",
  "Q:systemd",
  "Q:liveupdate",
  "V:1",
  "",
].join("\n");

Deno.test("udev data: a file as systemd-udevd writes it", () => {
  const record = parse(DISK);
  assert.equal(record.version, 1);
  assert.equal(record.initialized, "5107823");
  assert.deepEqual([...record.tags], ["systemd", "liveupdate"]);
  assert.deepEqual([...record.currentTags], ["systemd", "liveupdate"]);
  assert.deepEqual(record.devlinks, [
    "disk/by-id/nvme-Samsung_SSD_980_S64DNX0R123456",
    "disk/by-path/pci-0000:01:00.0-nvme-1",
  ]);
  assert.equal(record.properties.get("LIVEUPDATE_UNIT"), "vm@storage.service");
  assert.equal(record.properties.get("ID_FS_LABEL"), "data disk");
});

Deno.test("udev data: sticky tags (G: without Q:) are not current", () => {
  const record = parse("I:1\nE:A=b\nG:liveupdate\nG:systemd\nQ:systemd\nV:1\n");
  assert.ok(record.tags.has("liveupdate"));
  assert.ok(!record.currentTags.has("liveupdate"));
  assert.ok(record.currentTags.has("systemd"));
});

Deno.test("udev data: udev's own variations are accepted", () => {
  // Version 0 (systemd < 247): no V:, no Q:, every G: tag is current.
  const old = parse("I:1\nE:A=b\nG:liveupdate\n");
  assert.equal(old.version, 0);
  assert.ok(old.currentTags.has("liveupdate"));
  // No I:, a W: line (deprecated), blank lines, keys a newer udev may add, an empty value.
  const loose = parse("W:12\n\nE:A=\nZ:future\nx:lowercase\nQ:liveupdate\nV:1\n");
  assert.equal(loose.initialized, undefined);
  assert.equal(loose.properties.get("A"), "");
  assert.ok(loose.currentTags.has("liveupdate"));
  // A later line for the same property wins, as in udev.
  assert.equal(parse("E:A=1\nE:A=2\n").properties.get("A"), "2");
  // An empty file (a device udev knows nothing about).
  assert.equal(parse("").properties.size, 0);
  // Values are UTF-8.
  assert.equal(parse("E:ID_MODEL=Disque dur é\n").properties.get("ID_MODEL"), "Disque dur é");
});

Deno.test("udev data: keep decodes only the named properties", () => {
  const record = parse(DISK, new Set(["LIVEUPDATE_UNIT", "INTERFACE"]));
  assert.deepEqual([...record.properties], [["LIVEUPDATE_UNIT", "vm@storage.service"]]);
  assert.deepEqual(record.devlinks, []);
  assert.ok(record.currentTags.has("liveupdate"));
});

Deno.test("udev data: garbage is refused with the line number", () => {
  const cases: [string, number, RegExp][] = [
    ["I:1\nthis is not udev\n", 2, /"this is not udev" is not a "<key>:<value>" line/],
    ["E\n", 1, /is not a "<key>:<value>" line/],
    ["EE:x=y\n", 1, /is not a "<key>:<value>" line/],
    ["E:NOEQUALS\n", 1, /is not a property "E:NAME=value"/],
    ["E:=value\n", 1, /is not a property/],
    ["E:BAD NAME=x\n", 1, /is not a property/],
    ["I:12ab\n", 1, /is not a time in microseconds/],
    ["I:-1\n", 1, /is not a time/],
    ["L:x\n", 1, /is not a link priority/],
    ["V:one\n", 1, /is not a database version/],
    ["G:\n", 1, /does not name a valid tag/],
    ["Q:live update\n", 1, /does not name a valid tag/],
    ["G:a:b\n", 1, /does not name a valid tag/],
    ["S:\n", 1, /names no symlink/],
  ];
  for (const [text, line, reason] of cases) {
    const found = problem(text);
    assert.equal(found.line, line, text);
    assert.match(found.problem, reason, text);
  }
  assert.match(problem("I:1\nE:A=b").problem, /no newline \(a truncated file\?\)/);
  assert.match(problem(new Uint8Array([69, 58, 65, 61, 0, 10])).problem, /NUL bytes/);
  assert.match(problem("x".repeat(500) + "\n").problem, /^"x{77}\.\.\."/);
});

Deno.test("udev data: L: accepts negative priorities, V: any version", () => {
  assert.equal(parse("L:-100\nV:2\n").version, 2);
});

/** A deterministic pseudo-random source (xorshift32). */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

Deno.test("udev data: udevFacts says exactly what parseUdevData says, for files udev writes and garbage", () => {
  const next = random(20240611);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const lines = [
    ...DISK.split("\n").filter((line) => line !== ""),
    "E:LIVEUPDATE_UNIT=",
    "E:INTERFACE=eth0",
    "E:LIVEUPDATE_UNIT=vm-9.service",
    "Q:liveupdate",
    "G:liveupdate",
    "G:other",
    "V:0",
    "V:2",
    "W:3",
    "X:future key",
    "::odd",
    "",
    "L:-10",
    "I:0",
  ];
  const garbage = [
    "E:NAME",
    "E:=x",
    "E:NA ME=x",
    "Q:",
    "Q:a b",
    "G:a:b",
    "I:01",
    "I:x",
    "L:--1",
    "V:1x",
    "S:",
    "x",
    "E:KEY=caf\u00e9",
    "G:caf\u00e9",
    "\u00e9:x",
    "E:KEY=a\0b",
    "\r:x",
    "E:KEY=tab\there",
  ];
  const keep = new Set(["LIVEUPDATE_UNIT", "INTERFACE", "ID_FS_LABEL"]);
  for (let round = 0; round < 3000; round++) {
    const count = Math.floor(next() * 12);
    const chosen: string[] = [];
    for (let i = 0; i < count; i++) chosen.push(next() < 0.1 ? pick(garbage) : pick(lines));
    let text = chosen.join("\n") + (next() < 0.95 ? "\n" : "");
    if (count === 0) text = next() < 0.5 ? "" : "\n";
    const data = new TextEncoder().encode(text);
    if (next() < 0.05 && data.length > 0) data[Math.floor(next() * data.length)] = 0xff;
    for (const tag of ["liveupdate", "other", "bad tag"]) {
      const slow = parseUdevData(data, keep);
      const fast = udevFacts(data, tag, keep);
      const expected = isUdevDataProblem(slow)
        ? slow
        : { properties: slow.properties, tagged: slow.currentTags.has(tag) };
      assert.deepEqual(fast, expected, JSON.stringify(text));
    }
  }
});

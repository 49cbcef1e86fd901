import assert from "node:assert/strict";
import { parseUdevId } from "./udev_id.ts";

Deno.test("udev ids: every form udev writes", () => {
  assert.deepEqual(parseUdevId("b259:0"), { kind: "block", id: "b259:0", major: 259, minor: 0 });
  assert.deepEqual(parseUdevId("c10:200"), { kind: "char", id: "c10:200", major: 10, minor: 200 });
  assert.deepEqual(parseUdevId("n3"), { kind: "net", id: "n3", ifindex: 3 });
  assert.deepEqual(parseUdevId("+pci:0000:01:00.0"), {
    kind: "subsystem",
    id: "+pci:0000:01:00.0",
    subsystem: "pci",
    sysname: "0000:01:00.0",
  });
  assert.deepEqual(parseUdevId("+scsi_host:host0"), {
    kind: "subsystem",
    id: "+scsi_host:host0",
    subsystem: "scsi_host",
    sysname: "host0",
  });
  // '!' stands for '/' in block device names; it is part of the name.
  assert.equal((parseUdevId("+block:cciss!c0d0") as { sysname: string }).sysname, "cciss!c0d0");
  assert.deepEqual(parseUdevId("+drivers:pci:vfio-pci"), {
    kind: "driver",
    id: "+drivers:pci:vfio-pci",
    subsystem: "pci",
    driver: "vfio-pci",
  });
});

Deno.test("udev ids: anything else is refused with a reason", () => {
  for (
    const [id, reason] of [
      ["x", /none of udev's id forms/],
      ["b259", /none of udev's id forms/],
      ["b0259:1", /none of udev's id forms/],
      ["c4096:0", /out of range/],
      ["c1:1048576", /out of range/],
      ["n0", /none of udev's id forms/],
      ["n99999999999", /none of udev's id forms/],
      ["+pci", /"\+<subsystem>:"/],
      ["+:x", /"\+<subsystem>:"/],
      ["+pci:..", /not a device name/],
      ["+pci:", /not a device name/],
      ["+pci:a\nb", /not a device name/],
      ["+drivers:pci", /\+drivers:<subsystem>:<driver>/],
      ["+drivers::x", /\+drivers:<subsystem>:<driver>/],
      ["+a/b:c", /"\+<subsystem>:"/],
    ] as const
  ) {
    const parsed = parseUdevId(id);
    assert.ok("problem" in parsed, `${JSON.stringify(id)} should be refused`);
    assert.match(parsed.problem, reason, id);
  }
});

import assert from "node:assert/strict";
import { isBelow, isDevicePath, pathPrefixes, resolveLink } from "./sysfs_path.ts";

Deno.test("resolveLink: sysfs's own links land below devices/", () => {
  assert.deepEqual(
    resolveLink("bus/pci/devices", "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0"),
    { path: "pci0000:00/0000:00:01.0/0000:01:00.0" },
  );
  assert.deepEqual(resolveLink("dev/block", "../../devices/pci0000:00/x/nvme/nvme0/nvme0n1"), {
    path: "pci0000:00/x/nvme/nvme0/nvme0n1",
  });
  assert.deepEqual(resolveLink("class/net", "../../devices/virtual/net/lo"), {
    path: "virtual/net/lo",
  });
});

Deno.test("resolveLink: tricks are refused", () => {
  const refused: [string, string, RegExp][] = [
    ["bus/pci/devices", "/sys/devices/pci0000:00", /absolute path/],
    ["bus/pci/devices", "../../../devices/../../etc", /not a plain relative path/],
    ["bus/pci/devices", "../../../devices/./x", /not a plain relative path/],
    ["bus/pci/devices", "../../../devices//x", /not a plain relative path/],
    ["bus/pci/devices", "../../../devices/x/", /not a plain relative path/],
    ["bus/pci/devices", "../../../../etc", /outside the sysfs root/],
    ["bus/pci/devices", "../../../kernel/liveupdate", /not below "devices\/"/],
    ["bus/pci/devices", "../../../devices", /not below "devices\/"/],
    ["bus/pci/devices", "x", /leads to "bus\/pci\/devices\/x", not below/],
    ["bus/pci/devices", "..", /not a plain relative path/],
  ];
  for (const [dir, target, reason] of refused) {
    const resolved = resolveLink(dir, target);
    assert.ok("problem" in resolved, target);
    assert.match(resolved.problem, reason, target);
  }
});

Deno.test("device path helpers", () => {
  assert.ok(isDevicePath("pci0000:00/0000:00:01.0"));
  for (const bad of ["", "/a", "a/", "a//b", "a/../b", "./a", "a\0b"]) {
    assert.ok(!isDevicePath(bad), bad);
  }
  assert.deepEqual(pathPrefixes("a/b/c"), ["a/b", "a"]);
  assert.deepEqual(pathPrefixes("a"), []);
  assert.ok(isBelow("a/b", "a"));
  assert.ok(!isBelow("ab", "a"));
  assert.ok(!isBelow("a", "a"));
});

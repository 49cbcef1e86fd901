import assert from "node:assert/strict";
import {
  kstrtobool,
  liveUpdateCmdlineProblems,
  paramValue,
  splitCmdline,
  targetCmdline,
} from "./cmdline.ts";

Deno.test("splitCmdline honours quotes", () => {
  assert.deepEqual(splitCmdline(' root=/dev/vda1  ro quiet dyndbg="file a.c +p" x=""'), [
    "root=/dev/vda1",
    "ro",
    "quiet",
    "dyndbg=file a.c +p",
    "x=",
  ]);
});

Deno.test("paramValue: last occurrence wins, bare flag is null", () => {
  const params = splitCmdline("kho=off liveupdate kho=on");
  assert.equal(paramValue(params, "kho"), "on");
  assert.equal(paramValue(params, "liveupdate"), null);
  assert.equal(paramValue(params, "missing"), undefined);
});

Deno.test("kstrtobool matches the kernel", () => {
  const cases: [string | null, boolean | undefined][] = [
    ["1", true],
    ["y", true],
    ["Yes", true],
    ["on", true],
    ["ON", true],
    ["0", false],
    ["n", false],
    ["off", false],
    ["of", false],
    ["o", undefined],
    ["", undefined],
    [null, undefined],
    ["2", undefined],
    ["enable", undefined],
  ];
  for (const [value, expected] of cases) assert.equal(kstrtobool(value), expected, String(value));
});

Deno.test("liveUpdateCmdlineProblems refuses command lines that would panic the target", () => {
  assert.deepEqual(liveUpdateCmdlineProblems("root=/dev/vda liveupdate=on kho=1"), []);
  assert.deepEqual(liveUpdateCmdlineProblems("liveupdate=y kho=on liveupdate=1"), []);
  const missing = liveUpdateCmdlineProblems("root=/dev/vda kho=on");
  assert.equal(missing.length, 1);
  assert.match(missing[0]!, /no "liveupdate=on"/);
  const off = liveUpdateCmdlineProblems("liveupdate=on kho=on liveupdate=off");
  assert.match(off[0]!, /"liveupdate=off", which turns liveupdate off/);
  const bare = liveUpdateCmdlineProblems("liveupdate kho=on");
  assert.match(bare[0]!, /"liveupdate", which turns liveupdate off/);
  assert.equal(liveUpdateCmdlineProblems("").length, 2);
});

Deno.test("targetCmdline reuses the running line without bootloader parameters", () => {
  assert.equal(
    targetCmdline(
      "BOOT_IMAGE=/vmlinuz root=/dev/vda ro initrd=/initrd.img liveupdate=on kho=on\n",
      "",
      "",
    ),
    "root=/dev/vda ro liveupdate=on kho=on",
  );
  assert.equal(targetCmdline("root=/dev/vda", "", " marker=1 "), "root=/dev/vda marker=1");
  assert.equal(
    targetCmdline("root=/dev/vda", "root=/dev/vdb liveupdate=on", "kho=on"),
    "root=/dev/vdb liveupdate=on kho=on",
  );
  assert.equal(targetCmdline('a dyndbg="x y"', "", ""), 'a dyndbg="x y"');
});

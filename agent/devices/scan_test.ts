import assert from "node:assert/strict";
import { generateTree } from "../../tests/sim/tree.ts";
import { listDevices } from "./scan.ts";
import { makeFixture, withEachFs } from "./_test_fixture.ts";

Deno.test("listDevices: every device with live-update flags, no symlink followed", async () => {
  const tree = generateTree({ devices: 40, marked: 0 });
  await using fixture = await makeFixture(tree);
  // A symlink to a device elsewhere must not be walked into (the device would count twice).
  await Deno.symlink(
    fixture.dir(tree.devices[2]!.path),
    `${fixture.dir(tree.devices[1]!.path)}/link`,
  );
  await withEachFs((fs, name) => {
    assert.deepEqual(
      listDevices({ fs, sysfs: fixture.sysfs }),
      tree.devices.map((device) => device.path).sort(),
      name,
    );
    assert.throws(
      () => listDevices({ fs, sysfs: fixture.sysfs, limit: 5 }),
      /more than 5 directories/,
    );
  });
});

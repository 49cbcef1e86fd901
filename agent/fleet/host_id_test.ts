import assert from "node:assert/strict";
import { FleetIdentityError } from "./fleet_error.ts";
import { APP_ID, appSpecificId, readHostId } from "./host_id.ts";

Deno.test("the app-specific id matches systemd's derivation", async () => {
  // Produced on a Debian 12 machine whose /etc/machine-id was
  // 3d1219c7c4c5404aaa1f6d2a48adfda4 with
  // `systemd-id128 machine-id --app-specific=d077bce75086459dac3aa0924c82ae1c` (systemd 252).
  assert.equal(APP_ID, "d077bce75086459dac3aa0924c82ae1c");
  assert.equal(
    await appSpecificId("3d1219c7c4c5404aaa1f6d2a48adfda4"),
    "ec17c59a453d4e6c9f14f64060db4661",
  );
});

async function withMachineId(
  content: string | undefined,
  fn: (file: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-fleet-id-" });
  try {
    const file = `${dir}/machine-id`;
    if (content !== undefined) await Deno.writeTextFile(file, content);
    await fn(file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the host id comes from the machine id file, or the override", async () => {
  await withMachineId("3d1219c7c4c5404aaa1f6d2a48adfda4\n", async (file) => {
    assert.equal(
      await readHostId(Deno, { host_id: "", machine_id_file: file }),
      "ec17c59a453d4e6c9f14f64060db4661",
    );
    assert.equal(
      await readHostId(Deno, { host_id: "rack7-host3", machine_id_file: file }),
      "rack7-host3",
    );
  });
});

Deno.test("a missing or malformed machine id is a clear error", async () => {
  const cases: [string | undefined, RegExp][] = [
    [undefined, /Cannot read the machine id from ".*machine-id": it does not exist\. Run/],
    ["uninitialized\n", /is "uninitialized", not 32 lowercase hex digits/],
    ["", /is "", not 32 lowercase hex digits/],
    ["00000000000000000000000000000000\n", /is all zeros/],
    ["3D1219C7C4C5404AAA1F6D2A48ADFDA4\n", /not 32 lowercase hex digits/],
  ];
  for (const [content, says] of cases) {
    await withMachineId(content, async (file) => {
      const error = await readHostId(Deno, { host_id: "", machine_id_file: file }).catch((e) => e);
      assert.ok(error instanceof FleetIdentityError, String(error));
      assert.match(error.message, says);
      assert.match(error.message, /fleet\.host_id/);
    });
  }
});

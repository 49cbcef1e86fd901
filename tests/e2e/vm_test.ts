/**
 * The VM tier: every scenario of scenarios/mod.ts in a Debian guest under qemu
 * with systemd as PID 1, real udev, the luo_rfc1 module and real kexec. A
 * scenario that needs agent behaviour not written yet is registered as ignored
 * (its name says why). When the host cannot run qemu at all, the first test
 * fails with the reason: the tier is skipped, and that counts as a failure.
 *
 * @module
 */

import type { DiskImage } from "./disk.ts";
import { ensureImage } from "./image.ts";
import { qemuUnusable } from "./qemu.ts";
import { assertScenario, printTimings, runScenario } from "./scenario.ts";
import { SCENARIOS } from "./scenarios/mod.ts";

const unusable = await qemuUnusable();

Deno.test("vm: the host can run qemu (software emulation)", () => {
  if (unusable) {
    throw new Error(`The VM tier is SKIPPED on this host, which counts as a failure: ${unusable}`);
  }
});

let image: Promise<DiskImage> | undefined;

for (const scenario of SCENARIOS) {
  Deno.test({
    name: `vm: ${scenario.name}: ${scenario.summary}` +
      (scenario.pending ? ` (pending: ${scenario.pending})` : ""),
    ignore: scenario.pending !== undefined || unusable !== undefined,
    async fn() {
      image ??= ensureImage();
      const result = await runScenario(await image, scenario);
      printTimings(result);
      assertScenario(result);
    },
  });
}

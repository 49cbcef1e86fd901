/**
 * `liveupdate-agent devices` end to end: the real CLI, configuration, RFC v1
 * backend and device layer against the simulated kernel.
 */
import assert from "node:assert/strict";
import { assertDocument } from "../tools/assert_document.ts";
import { runCli } from "../../agent/cli/mod.ts";
import { reconcileDevices } from "../../agent/devices/mod.ts";
import { createTestHost } from "../../agent/host/mod.ts";
import { generateTree } from "../sim/tree.ts";
import { startRig } from "./_devices_sim.ts";

Deno.test("devices --json against the simulated kernel, before and after a live update", async () => {
  await using rig = await startRig(generateTree({ devices: 120, marked: 4 }));
  const configRoot = `${rig.state}-config`;
  await Deno.mkdir(`${configRoot}/etc/liveupdate/config.d`, { recursive: true });
  try {
    await Deno.writeTextFile(
      `${configRoot}/etc/liveupdate/config.d/50-sim.toml`,
      [
        "[paths]",
        `sysfs = "${rig.sim.root}"`,
        `udev_db = "${rig.udev}"`,
        `state_dir = "${rig.state}"`,
        `debugfs = "${configRoot}/debug"`,
        "[kernel]",
        'backend = "rfc-v1"',
        "[devices]",
        'match = { DRIVER = "vfio-pci" }',
        "",
      ].join("\n"),
    );
    const run = async (...args: string[]) => {
      const host = createTestHost();
      const code = await runCli(["devices", `--config-root=${configRoot}`, ...args], host, {
        platform: { libc: () => rig.libc, kernelFs: () => rig.fs },
      });
      return { code, out: host.stdout.text(), err: host.stderr.text() };
    };
    const before = await run("--json");
    assert.equal(before.code, 0, before.err);
    const report = assertDocument("devices", before.out);
    assert.equal(report.summary.toRequest, 4);

    await reconcileDevices({ kernel: rig.kernel, selection: rig.select(), store: rig.store });
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "1");
    await rig.sim.kexec();
    const after = await run();
    assert.equal(after.code, 0, after.err);
    assert.match(after.out, /^ +Kernel: state updated$/m);
    assert.match(after.out, /Preserved, waiting to be reclaimed \(6\)/);
    assert.match(after.out, /vm-3\.service/);
    assert.match(
      after.out,
      /Summary: 4 selected, 0 requested, 4 to request, 0 to clear, 0 conflicts, 6 preserved, 6 not reclaimed yet\./,
    );
  } finally {
    await Deno.remove(configRoot, { recursive: true });
  }
});

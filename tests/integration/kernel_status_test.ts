/**
 * `liveupdate-agent status` against the simulated kernel, through the real CLI.
 */
import assert from "node:assert/strict";
import { assertDocument } from "../tools/assert_document.ts";
import { type Platform, runCli } from "../../agent/cli/mod.ts";
import { createTestHost, type Libc, libcKernelFs, openLibc } from "../../agent/host/mod.ts";
import { startSim } from "../sim/harness.ts";
import { kernelTree } from "./_kernel_sim.ts";

async function configRoot(sysfs: string): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-kernel-status-" });
  await Deno.mkdir(`${root}/proc/sys/kernel`, { recursive: true });
  await Deno.writeTextFile(`${root}/proc/sys/kernel/osrelease`, "6.14.0-sim\n");
  await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
  await Deno.writeTextFile(
    `${root}/etc/liveupdate/config.d/50-sim.toml`,
    [
      "[paths]",
      `sysfs = "${sysfs}"`,
      `proc = "${root}/proc"`,
      `debugfs = "${root}/debug"`,
      "[kernel]",
      `device = "${root}/dev/liveupdate"`,
      "[compat]",
      'running_version = "1.0"',
      'target_version = "1.1"',
      "",
    ].join("\n"),
  );
  return root;
}

/** The production platform: the kernel's files through libc. */
function platformOf(libc: Libc): Platform {
  return { libc: () => libc, kernelFs: () => libcKernelFs(libc) };
}

Deno.test("status reads the simulated kernel: backend, state, compatibility", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  const root = await configRoot(sim.root);
  using libc = openLibc();
  const platform = platformOf(libc);
  try {
    await Deno.writeTextFile(sim.path("kernel/liveupdate/prepare"), "1");
    const host = createTestHost();
    assert.equal(
      await runCli(["status", "--json", `--config-root=${root}`], host, { platform }),
      0,
    );
    const report = assertDocument("status", host.stdout.text());
    assert.equal(report.kernel.available, true);
    assert.equal(report.kernel.backend, "rfc-v1");
    assert.equal(report.kernel.state, "prepared");
    assert.equal(report.handover.status, "unavailable");
    assert.equal(report.compat.verdict.outcome, "compatible");

    const text = createTestHost();
    assert.equal(await runCli(["status", `--config-root=${root}`], text, { platform }), 0);
    assert.match(
      text.stdout.text(),
      /\n {5}Kernel: rfc-v1 at .*\/kernel\/liveupdate\n {6}State: prepared\n/,
    );
    assert.match(
      text.stdout.text(),
      /\n {4}Running: 6\.14\.0-sim: LUO ABI 1\.0 \(set in the configuration\)\n/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status on a kernel with live update disabled names what is missing", async () => {
  await using sim = await startSim({ tree: kernelTree(), enabled: false });
  const root = await configRoot(sim.root);
  using libc = openLibc();
  const platform = platformOf(libc);
  try {
    const host = createTestHost();
    assert.equal(
      await runCli(["status", "--json", `--config-root=${root}`], host, { platform }),
      0,
    );
    const report = assertDocument("status", host.stdout.text());
    assert.equal(report.kernel.available, false);
    assert.ok(report.kernel.missing.includes(`${sim.root}/kernel/liveupdate`));
    assert.match(report.kernel.probes[0].summary, /booted without liveupdate=1 or with KHO off/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

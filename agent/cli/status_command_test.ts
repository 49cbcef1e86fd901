import assert from "node:assert/strict";
import { buildFdt, khoTree, versionProperty } from "../../tests/kho/fdt_builder.ts";
import { fakeBzImage } from "../../tests/kho/bzimage.ts";
import { generateTree, writePlainSysfs } from "../../tests/sim/tree.ts";
import { createTestHost, type Libc, libcKernelFs, openLibc } from "../host/mod.ts";
import { runCli } from "./run.ts";
import type { Platform } from "./platform.ts";

/** The production platform: the kernel's files through libc. */
function platformOf(libc: Libc): Platform {
  return { libc: () => libc, kernelFs: () => libcKernelFs(libc) };
}

async function hostDir(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-status-" });
  await writePlainSysfs(generateTree({ devices: 4, marked: 0 }), `${root}/sys`);
  await Deno.mkdir(`${root}/proc/sys/kernel`, { recursive: true });
  await Deno.writeTextFile(`${root}/proc/sys/kernel/osrelease`, "6.14.0-old\n");
  await Deno.mkdir(`${root}/debug/kho/in`, { recursive: true });
  await Deno.writeFile(`${root}/debug/kho/in/fdt`, khoTree(versionProperty(1, 0)));
  await Deno.mkdir(`${root}/modules/6.14.0-old`, { recursive: true });
  await Deno.mkdir(`${root}/modules/6.15.0-new`, { recursive: true });
  await Deno.writeTextFile(`${root}/modules/6.14.0-old/liveupdate-abi`, "LUO_VERSION=1.0\n");
  await Deno.writeTextFile(`${root}/modules/6.15.0-new/liveupdate-abi`, "LUO_VERSION=1.1\n");
  await Deno.mkdir(`${root}/boot`);
  await Deno.writeFile(`${root}/boot/vmlinuz`, fakeBzImage({ version: "6.15.0-new (x@y) #1" }));
  await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
  await Deno.writeTextFile(
    `${root}/etc/liveupdate/config.d/50-test.toml`,
    [
      "[paths]",
      `sysfs = "${root}/sys"`,
      `proc = "${root}/proc"`,
      `debugfs = "${root}/debug"`,
      "[kernel]",
      `device = "${root}/dev/liveupdate"`,
      "[compat]",
      `modules_dir = "${root}/modules"`,
      "[target]",
      `kernel = "${root}/boot/vmlinuz"`,
      "",
    ].join("\n"),
  );
  return root;
}

Deno.test("status --json reports the backend, state, handover and compatibility", async () => {
  const root = await hostDir();
  using libc = openLibc();
  const platform = platformOf(libc);
  try {
    await Deno.writeTextFile(`${root}/sys/kernel/liveupdate/state`, "updated\n");
    const host = createTestHost();
    assert.equal(
      await runCli(["status", "--json", `--config-root=${root}`], host, { platform }),
      0,
    );
    const report = JSON.parse(host.stdout.text());
    assert.equal(report.version, 1);
    assert.equal(report.kernel.available, true);
    assert.equal(report.kernel.backend, "rfc-v1");
    assert.equal(report.kernel.location, `${root}/sys/kernel/liveupdate`);
    assert.equal(report.kernel.state, "updated");
    assert.deepEqual(report.kernel.features, { stateMachine: true, devices: true, extraFiles: [] });
    assert.deepEqual(report.handover, {
      status: "present",
      file: `${root}/debug/kho/in/fdt`,
      version: "1.0",
      detail: null,
    });
    assert.equal(report.compat.running.version, "1.0");
    assert.equal(report.compat.target.release, "6.15.0-new");
    assert.equal(report.compat.target.releaseSource, "image header");
    assert.equal(report.compat.target.version, "1.1");
    assert.equal(report.compat.verdict.outcome, "compatible");
    assert.equal(report.compat.verdict.allowed, true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status says what is missing when the kernel has no live update", async () => {
  const root = await hostDir();
  using libc = openLibc();
  const platform = platformOf(libc);
  try {
    await Deno.remove(`${root}/sys/kernel/liveupdate`, { recursive: true });
    await Deno.writeFile(`${root}/debug/kho/in/fdt`, buildFdt({ name: "" }));
    const host = createTestHost();
    assert.equal(await runCli(["status", `--config-root=${root}`], host, { platform }), 0);
    const text = host.stdout.text();
    assert.match(text, /\n {5}Kernel: unavailable — no usable live-update interface\n/);
    assert.match(
      text,
      /\n {13}rfc-v1: No .*\/sys\/kernel\/liveupdate: the running kernel has no RFC v1/,
    );
    assert.match(text, /\n {13}mainline: No .*\/dev\/liveupdate/);
    assert.match(text, /\n {3}Handover: none — .* holds no liveupdate_orchestrator node/);
    assert.match(
      text,
      /\n {4}Running: 6\.14\.0-old: LUO ABI 1\.0 \(from .*6\.14\.0-old\/liveupdate-abi\)\n/,
    );
    assert.match(
      text,
      /\n {5}Target: .*vmlinuz: 6\.15\.0-new \(from its image header\): LUO ABI 1\.1/,
    );
    assert.match(text, /\n {5}Compat: Compatible: /);

    const json = createTestHost();
    assert.equal(
      await runCli(["status", "--json", `--config-root=${root}`], json, { platform }),
      0,
    );
    const report = JSON.parse(json.stdout.text());
    assert.equal(report.kernel.available, false);
    assert.deepEqual(report.kernel.missing, [
      `${root}/sys/kernel/liveupdate`,
      `${root}/dev/liveupdate`,
    ]);
    assert.equal(report.kernel.state, null);
    assert.equal(report.handover.status, "absent");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status reports a garbled state file and a malformed handover without failing", async () => {
  const root = await hostDir();
  using libc = openLibc();
  const platform = platformOf(libc);
  try {
    await Deno.writeTextFile(`${root}/sys/kernel/liveupdate/state`, "garbage\n");
    await Deno.writeFile(`${root}/debug/kho/in/fdt`, new Uint8Array(64));
    const host = createTestHost();
    assert.equal(
      await runCli(["status", "--json", `--config-root=${root}`], host, { platform }),
      0,
    );
    const report = JSON.parse(host.stdout.text());
    assert.equal(report.kernel.available, false);
    assert.match(report.kernel.reason, /holds "garbage\\n", not a live-update state/);
    assert.equal(report.handover.status, "invalid");
    assert.match(report.handover.detail, /is not a valid device tree/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status says why the running release is unknown when procfs cannot tell", async () => {
  const root = await hostDir();
  using libc = openLibc();
  const platform = platformOf(libc);
  try {
    await Deno.remove(`${root}/proc/sys/kernel/osrelease`);
    const host = createTestHost();
    assert.equal(
      await runCli(["status", "--json", `--config-root=${root}`], host, { platform }),
      0,
    );
    const report = JSON.parse(host.stdout.text());
    assert.equal(report.compat.running.release, null);
    assert.match(
      report.compat.running.problem,
      new RegExp(`Cannot read ${root}/proc/sys/kernel/osrelease \\(ENOENT\\): paths\\.proc`),
    );
    assert.equal(report.compat.verdict.allowed, false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

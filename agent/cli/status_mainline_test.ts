import assert from "node:assert/strict";
import { assertDocument } from "../../tests/tools/assert_document.ts";
import { createTestHost, libcKernelFs, openLibc } from "../host/mod.ts";
import type { Platform } from "./platform.ts";
import { runCli } from "./run.ts";

/** A host directory with procfs facts, and either the RFC v1 files or none. */
async function hostDir(rfcV1: boolean): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-status-mainline-" });
  await Deno.mkdir(`${root}/proc/sys/kernel/random`, { recursive: true });
  await Deno.writeTextFile(`${root}/proc/sys/kernel/osrelease`, "7.3.4\n");
  await Deno.writeTextFile(
    `${root}/proc/sys/kernel/random/boot_id`,
    "11111111-2222-3333-4444-555555555555\n",
  );
  await Deno.writeTextFile(`${root}/proc/cmdline`, "root=/dev/vda kho=on liveupdate=on\n");
  await Deno.writeTextFile(`${root}/proc/uptime`, "10.00 5.00\n");
  await Deno.mkdir(`${root}/sys/devices`, { recursive: true });
  await Deno.mkdir(`${root}/sys/kernel`, { recursive: true });
  if (rfcV1) {
    await Deno.mkdir(`${root}/sys/kernel/liveupdate`);
    await Deno.writeTextFile(`${root}/sys/kernel/liveupdate/state`, "normal\n");
    for (const name of ["prepare", "finish"]) {
      await Deno.writeTextFile(`${root}/sys/kernel/liveupdate/${name}`, "");
    }
  }
  // KHO in debugfs: this kernel's outgoing tree, no incoming one (a cold boot).
  await Deno.mkdir(`${root}/debug/kho/out/sub_fdts`, { recursive: true });
  const luo = new Uint8Array(32);
  luo.set(new TextEncoder().encode("luo-v5"));
  new DataView(luo.buffer).setBigUint64(8, 1n, true);
  await Deno.writeFile(`${root}/debug/kho/out/sub_fdts/LUO`, luo);
  await Deno.mkdir(`${root}/modules/7.3.4`, { recursive: true });
  await Deno.writeTextFile(
    `${root}/modules/7.3.4/liveupdate-abi`,
    "LUO_VERSION=1.0\nKHO_COMPATIBLE=kho-v4\nLUO_COMPATIBLE=luo-v5\nLUO_FILE_HANDLERS=memfd-v2\n",
  );
  await Deno.writeTextFile(`${root}/modules/7.3.4/vmlinuz`, "an image");
  await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
  await Deno.writeTextFile(
    `${root}/etc/liveupdate/config.d/50-test.toml`,
    [
      "[paths]",
      `sysfs = "${root}/sys"`,
      `proc = "${root}/proc"`,
      `debugfs = "${root}/debug"`,
      `state_dir = "${root}/state"`,
      `runtime_dir = "${root}/run"`,
      "[kernel]",
      // A character device stands in for /dev/liveupdate (never opened by status).
      `device = "${rfcV1 ? `${root}/no-liveupdate` : "/dev/null"}"`,
      "[sessions]",
      `socket = "${root}/run/sessions.sock"`,
      "[compat]",
      `modules_dir = "${root}/modules"`,
      "[target]",
      `kernel = "${root}/modules/7.3.4/vmlinuz"`,
      "",
    ].join("\n"),
  );
  return root;
}

// deno-lint-ignore no-explicit-any
async function status(root: string, platform: Platform, json: boolean): Promise<any> {
  const host = createTestHost();
  const args = ["status", ...(json ? ["--json"] : []), `--config-root=${root}`];
  assert.equal(await runCli(args, host, { platform }), 0, host.stderr.text());
  // Both backends' documents match the one published schema.
  return json ? assertDocument("status", host.stdout.text()) : host.stdout.text();
}

/** The shape of a JSON value: its keys, recursively (lists of objects by their first). */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) {
    return typeof value[0] === "object" && value[0] !== null ? [shape(value[0])] : "list";
  }
  if (value === null || typeof value !== "object") return "value";
  return Object.fromEntries(
    Object.keys(value).sort().map((key) => [key, shape((value as Record<string, unknown>)[key])]),
  );
}

Deno.test("status on a mainline kernel: the backend named, the sessions' side, the same schema", async () => {
  using libc = openLibc();
  const platform: Platform = { libc: () => libc, kernelFs: () => libcKernelFs(libc) };
  const mainline = await hostDir(false);
  const rfc = await hostDir(true);
  try {
    const report = await status(mainline, platform, true);
    assert.equal(report.kernel.available, true);
    assert.equal(report.kernel.backend, "mainline");
    assert.equal(report.kernel.location, "/dev/null");
    assert.equal(report.kernel.state, null);
    assert.deepEqual(report.kernel.features, {
      stateMachine: false,
      devices: false,
      extraFiles: [],
    });
    const sessions = report.kernel.sessions;
    assert.equal(sessions.device, "/dev/null");
    assert.equal(sessions.cmdline.ok, true);
    assert.equal(sessions.getNameIoctl, true);
    assert.equal(sessions.devices.preserved, false);
    assert.equal(sessions.outgoing.luo, "luo-v5");
    assert.equal(sessions.outgoing.liveupdateNumber, 1);
    assert.match(sessions.incoming.problem, /kho\/in: not present/);
    assert.equal(sessions.broker.running, false);
    assert.match(sessions.broker.problem, /does not answer on .*sessions\.sock/);
    assert.equal(report.handover.status, "absent");
    assert.deepEqual(report.compat.running.compatible, {
      kho: "kho-v4",
      luo: "luo-v5",
      fileHandlers: ["memfd-v2"],
    });
    assert.equal(report.compat.verdict.outcome, "compatible", report.compat.verdict.sentence);

    const other = await status(rfc, platform, true);
    assert.equal(other.kernel.backend, "rfc-v1");
    assert.equal(other.kernel.sessions, null);
    assert.equal(other.compat.running.version, "1.0");
    // The same fields on both backends (sessions is null where there are none).
    const withoutSessions = (r: { kernel: Record<string, unknown> }) => ({
      ...r,
      kernel: { ...r.kernel, sessions: null },
    });
    assert.deepEqual(shape(withoutSessions(report)), shape(withoutSessions(other)));

    const text = await status(mainline, platform, false);
    assert.match(text, /\n {5}Kernel: mainline at \/dev\/null\n/);
    assert.match(text, /\n {4}Devices: this kernel preserves no devices\n/);
    assert.match(text, /\n {3}Sessions: no broker — The session broker does not answer/);
    assert.match(text, /\n {4}Running: 7\.3\.4: handover formats luo-v5, kho-v4, memfd-v2\n/);
  } finally {
    await Deno.remove(mainline, { recursive: true });
    await Deno.remove(rfc, { recursive: true });
  }
});

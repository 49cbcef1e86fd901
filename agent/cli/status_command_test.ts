import assert from "node:assert/strict";
import { assertDocument } from "../../tests/tools/assert_document.ts";
import { buildFdt, khoTree, versionProperty } from "../../tests/kho/fdt_builder.ts";
import { fakeBzImage } from "../../tests/kho/bzimage.ts";
import { generateTree, writePlainSysfs } from "../../tests/sim/tree.ts";
import { createTestHost, type Libc, libcKernelFs, openLibc } from "../host/mod.ts";
import { ATTEMPT_SCHEMA, type AttemptRecord, type AttemptStatus } from "../store/mod.ts";
import { runCli } from "./run.ts";
import type { Platform } from "./platform.ts";
import { SMALLEST_PLAN } from "../store/test_plan.ts";

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
      `state_dir = "${root}/state"`,
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
    const report = assertDocument("status", host.stdout.text());
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
    const report = assertDocument("status", json.stdout.text());
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
    const report = assertDocument("status", host.stdout.text());
    assert.equal(report.kernel.available, false);
    assert.match(report.kernel.reason, /holds "garbage\\n", not a live-update state/);
    assert.equal(report.handover.status, "invalid");
    assert.match(report.handover.detail, /is not a valid device tree/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function attempt(id: string, status: AttemptStatus, notes: Record<string, unknown> = {}) {
  const record: AttemptRecord = {
    schema: ATTEMPT_SCHEMA,
    id,
    agent_version: "0.1.0",
    backend: "rfc-v1",
    status,
    created: "2026-11-25T20:00:00.000Z",
    updated: "2026-11-25T20:00:01.000Z",
    kernels: {
      running: { release: "6.14.0-old", luo_version: "1.0" },
      target: { release: "6.15.0-new", luo_version: "1.1" },
    },
    compat: { verdict: "compatible", reason: "", override: false },
    plan: SMALLEST_PLAN,
    steps: [],
    timings: {},
    overrides: [],
    notes,
  };
  if (status !== "preparing") {
    record.outcome = {
      result: status,
      message: `It ${status}.`,
      exit_code: 6,
      at: "2026-11-25T20:00:01.000Z",
    };
  }
  return JSON.stringify(record);
}

Deno.test("status lists the last attempts, the open one and damaged records", async () => {
  const root = await hostDir();
  using libc = openLibc();
  const platform = platformOf(libc);
  try {
    const dir = `${root}/state/attempts`;
    await Deno.mkdir(dir, { recursive: true });
    const empty = createTestHost();
    assert.equal(await runCli(["status", `--config-root=${root}`], empty, { platform }), 0);
    assert.match(empty.stdout.text(), /\n {3}Attempts: none recorded in .*\/state\/attempts\n/);

    const files: Record<string, string> = {
      "20261125T200000.000Z-aaaaaa.json": attempt("20261125T200000.000Z-aaaaaa", "rolled-back", {
        failure: { step: "phase-prepare", error: "x" },
      }),
      "20261125T210000.000Z-bbbbbb.json": attempt("20261125T210000.000Z-bbbbbb", "preparing"),
      "20261125T213000.000Z-cccccc.json": attempt("20261125T213000.000Z-cccccc", "refused"),
      "20261125T190000.000Z-dddddd.json": '{"schema": 1, "id": ',
    };
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }

    const host = createTestHost();
    assert.equal(await runCli(["status", `--config-root=${root}`], host, { platform }), 0);
    const text = host.stdout.text();
    assert.match(
      text,
      /\n {5}Active: updating since 2026-11-25 20:00:00Z; .*\n {13}Attempt 20261125T210000\.000Z-bbbbbb is being prepared\.\n/,
    );
    assert.match(text, /\n {3}Attempts: 3 recorded in .*\/state\/attempts, 1 unusable\n/);
    assert.match(
      text,
      /\n {2}2026-11-25 20:00:00Z {2}refused +6\.14\.0-old → 6\.15\.0-new +1\.0s {2}20261125T213000\.000Z-cccccc {2}It refused\.\n/,
    );
    assert.match(
      text,
      /\n {2}2026-11-25 20:00:00Z {2}rolled-back +6\.14\.0-old → 6\.15\.0-new +1\.0s {2}20261125T200000\.000Z-aaaaaa {2}It rolled-back\.\n/,
    );
    assert.match(
      text,
      /\n {2}unusable record .*20261125T190000\.000Z-dddddd\.json: it is not valid JSON/,
    );

    const json = createTestHost();
    assert.equal(
      await runCli(["status", "--json", `--config-root=${root}`], json, { platform }),
      0,
    );
    const report = assertDocument("status", json.stdout.text());
    assert.equal(report.summary.state, "updating");
    assert.equal(report.summary.attempt, "20261125T210000.000Z-bbbbbb");
    const { attempts } = report;
    assert.equal(attempts.dir, dir);
    assert.equal(attempts.total, 3);
    assert.equal(
      attempts.open,
      "20261125T210000.000Z-bbbbbb",
      "a refused attempt hides no open one",
    );
    assert.deepEqual(attempts.recent.map((a: { id: string }) => a.id.slice(-6)), [
      "cccccc",
      "bbbbbb",
      "aaaaaa",
    ]);
    assert.deepEqual(attempts.recent[2], {
      id: "20261125T200000.000Z-aaaaaa",
      status: "rolled-back",
      ended: true,
      started: "2026-11-25T20:00:00.000Z",
      ended_at: "2026-11-25T20:00:01.000Z",
      running_release: "6.14.0-old",
      target_release: "6.15.0-new",
      duration_ms: 1000,
      exit_code: 6,
      message: "It rolled-back.",
      failed_step: "phase-prepare",
    });
    assert.equal(attempts.unreadable.length, 1);
    assert.equal(attempts.problem, null);
    // Reading changed nothing.
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      Object.keys(files).sort(),
    );
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

import assert from "node:assert/strict";
import { assertDocument } from "../../tests/tools/assert_document.ts";
import { createTestHost, libcKernelFs, openLibc } from "../host/mod.ts";
import { ATTEMPT_SCHEMA, type AttemptRecord, type AttemptStatus } from "../store/mod.ts";
import { runCli } from "./run.ts";

const OUTCOME_CODES: Partial<Record<AttemptStatus, number>> = {
  succeeded: 0,
  failed: 1,
  "rolled-back": 6,
  refused: 5,
  cancelled: 0,
};

/** A record as the update flow writes it, started at `minute` past 20:00. */
function record(id: string, status: AttemptStatus, minute: number): AttemptRecord {
  const at = (second: number) => new Date(Date.UTC(2026, 10, 25, 20, minute, second)).toISOString();
  const ended = status in OUTCOME_CODES;
  return {
    schema: ATTEMPT_SCHEMA,
    id,
    agent_version: "0.1.0",
    backend: "rfc-v1",
    status,
    created: at(0),
    updated: at(12),
    kernels: {
      running: { release: "6.19.0-old", luo_version: "1.0" },
      target: { release: "6.19.1-new", image: "/boot/vmlinuz", luo_version: "1.0" },
    },
    compat: { verdict: "compatible", reason: "Compatible.", override: false },
    plan: {
      backend: "rfc-v1",
      target: {
        kernel: "/boot/vmlinuz",
        initrd: null,
        cmdline: "root=/dev/vda liveupdate=on kho=on",
        release: "6.19.1-new",
        luoVersion: "1.0",
      },
      running: { release: "6.19.0-old", luoVersion: "1.0", cmdline: "root=/dev/vda" },
      compat: { verdict: "compatible", sentence: "Compatible.", allowed: true, override: false },
      devices: {
        supported: true,
        selected: [{ path: "pci0000:00/0000:00:01.0/0000:01:00.0", id: "+pci:0000:01:00.0" }],
        ancestors: ["pci0000:00", "pci0000:00/0000:00:01.0"],
        changes: [{ path: "pci0000:00/0000:00:01.0/0000:01:00.0", from: false, to: true }],
      },
      phases: ["prepare", "reboot", "updated", "finish", "cancel"].map((phase) => ({
        phase,
        stop: phase === "prepare" ? ["vmm.service"] : [],
        start: [],
        target: `liveupdate-${phase}.target`,
        timeoutMs: 120_000,
      })),
      kexecArgs: ["-s", "-l", "/boot/vmlinuz"],
      kexecWasLoaded: null,
      stopAtPrepared: false,
      issue: "systemd",
    },
    steps: [
      {
        name: "request-devices",
        status: "done",
        started: at(1),
        ended: at(2),
        result: { requested: 2, alreadyRequested: 0, cleared: 0 },
      },
      ...(status === "rolled-back"
        ? [{
          name: "phase-prepare",
          status: "undone" as const,
          started: at(3),
          ended: at(5),
          error: 'Unit "vmm.service" stop job: timeout',
        }]
        : []),
    ],
    timings: { started: at(0), prepare_ms: 1500 },
    overrides: [],
    notes: status === "succeeded"
      ? { devices: { selected: 2, preserved: 4, reclaimed: 4, unreclaimed: 0 } }
      : {},
    ...(ended
      ? {
        outcome: {
          result: status,
          message: status === "succeeded"
            ? "Live update succeeded."
            : `Step "phase-prepare" failed: timeout. Everything was rolled back.`,
          exit_code: OUTCOME_CODES[status]!,
          at: at(12),
        },
      }
      : {}),
  };
}

async function withRecords(
  records: AttemptRecord[],
  run: (root: string, state: string) => Promise<void>,
  extraFiles: Record<string, string> = {},
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-history-" });
  const state = `${root}/state`;
  try {
    await Deno.mkdir(`${state}/attempts`, { recursive: true });
    for (const r of records) {
      await Deno.writeTextFile(`${state}/attempts/${r.id}.json`, JSON.stringify(r));
    }
    for (const [name, text] of Object.entries(extraFiles)) {
      await Deno.writeTextFile(`${state}/attempts/${name}`, text);
    }
    await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/etc/liveupdate/config.d/50-test.toml`,
      `[paths]\nstate_dir = "${state}"\nsysfs = "${root}/sys"\n[kernel]\ndevice = "${root}/dev/lu"\n`,
    );
    await run(root, state);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function cli(root: string, ...argv: string[]) {
  const host = createTestHost();
  using libc = openLibc();
  const code = await runCli([...argv, `--config-root=${root}`], host, {
    platform: { libc: () => libc, kernelFs: () => libcKernelFs(libc) },
  });
  return { code, stdout: host.stdout.text(), stderr: host.stderr.text() };
}

const A = "20261125T200000Z-aaaaaa";
const B = "20261125T201000Z-bbbbbb";
const C = "20261125T202000Z-cccccc";

Deno.test("history lists the attempts newest first; --json follows its schema", async () => {
  await withRecords(
    [record(A, "succeeded", 0), record(B, "rolled-back", 10), record(C, "succeeded", 20)],
    async (root, state) => {
      const text = await cli(root, "history");
      assert.equal(text.code, 0, text.stderr);
      const lines = text.stdout.split("\n");
      assert.match(
        lines[0]!,
        /^● 3 attempt\(s\) recorded in .*\/attempts \(ended ones kept: 50\)$/,
      );
      const rows = lines.filter((line) => /^2026-11-25 /.test(line));
      assert.deepEqual(rows.map((row) => row.split(/\s+/)[2]), [
        "succeeded",
        "rolled-back",
        "succeeded",
      ]);
      assert.match(
        rows[1]!,
        /6\.19\.0-old → 6\.19\.1-new +12s +20261125T201000Z-bbbbbb +Step "phase-prepare" failed/,
      );

      const json = assertDocument(
        "history",
        (await cli(root, "history", "--json", "--limit=2")).stdout,
      );
      assert.equal(json.dir, `${state}/attempts`);
      assert.deepEqual(json.attempts.map((a: { id: string }) => a.id), [C, B]);
      assert.equal(json.attempts[1].exit_code, 6);
      assert.equal(json.attempts[1].failed_step, null);
      assert.equal(json.attempts[1].duration_ms, 12_000);
    },
  );
});

Deno.test("history ID shows one record; --json prints the record itself", async () => {
  await withRecords([record(A, "succeeded", 0), record(B, "rolled-back", 10)], async (root) => {
    const text = await cli(root, "history", B);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^● attempt 20261125T201000Z-bbbbbb — rolled-back\n/);
    assert.match(text.stdout, /\n +Status: rolled-back \(exit 6\)\n/);
    assert.match(
      text.stdout,
      /\n +Kernels: 6\.19\.0-old \(LUO ABI 1\.0\) → 6\.19\.1-new \(LUO ABI 1\.0\)\n/,
    );
    assert.match(text.stdout, /\n +Timings: prepare 1\.5s\n/);
    assert.match(text.stdout, /\n {2}✓ request-devices +done +1\.0s +2 device\(s\) requested\n/);
    assert.match(
      text.stdout,
      /\n {2}↺ phase-prepare +undone +2\.0s +Unit "vmm\.service" stop job: timeout\n/,
    );
    const latest = assertDocument(
      "attempt",
      (await cli(root, "history", "latest", "--json")).stdout,
    );
    assert.equal(latest.id, B);
    const missing = await cli(root, "history", "20990101T000000Z-nope00");
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /No attempt "20990101T000000Z-nope00" is recorded in ".*\/attempts"/,
    );
  });
});

Deno.test("status summarizes the last attempts and says what the agent is doing", async () => {
  await withRecords([record(A, "succeeded", 0), record(B, "rolled-back", 10)], async (root) => {
    const report = assertDocument("status", (await cli(root, "status", "--json")).stdout);
    // The kernel is missing here: unavailable wins over the history.
    assert.equal(report.summary.state, "unavailable");
    assert.equal(report.attempts.total, 2);
    assert.deepEqual(report.attempts.recent.map((a: { id: string }) => a.id), [B, A]);
    const text = (await cli(root, "status")).stdout;
    assert.match(
      text,
      /^○ liveupdate-agent \S+ - live update host agent\n +Active: unavailable\n +The running kernel offers no usable live-update interface/,
    );
    assert.match(text, /\n +Attempts: 2 recorded in .*\/attempts\n/);
    assert.match(
      text,
      /\nLast attempts \(newest first; 'liveupdate-agent history' lists all 2\):\n {2}2026-11-25 20:10:00Z {2}rolled-back /,
    );
  });
  // With a kernel in state normal and an attempt still open: updating.
  await withRecords([record(A, "succeeded", 0), record(C, "prepared", 20)], async (root) => {
    await Deno.mkdir(`${root}/sys/kernel/liveupdate`, { recursive: true });
    await Deno.mkdir(`${root}/sys/devices`);
    for (const [file, text] of [["state", "prepared\n"], ["prepare", ""], ["finish", ""]]) {
      await Deno.writeTextFile(`${root}/sys/kernel/liveupdate/${file}`, text!);
    }
    const report = assertDocument("status", (await cli(root, "status", "--json")).stdout);
    assert.equal(report.summary.state, "updating");
    assert.equal(report.summary.attempt, C);
    assert.match(report.summary.sentence, /is prepared and waits for the kexec or a cancel/);
  });
  // An unusable record: failed.
  await withRecords([record(A, "succeeded", 0)], async (root) => {
    await Deno.mkdir(`${root}/sys/kernel/liveupdate`, { recursive: true });
    await Deno.mkdir(`${root}/sys/devices`);
    for (const [file, text] of [["state", "normal\n"], ["prepare", ""], ["finish", ""]]) {
      await Deno.writeTextFile(`${root}/sys/kernel/liveupdate/${file}`, text!);
    }
    const report = assertDocument("status", (await cli(root, "status", "--json")).stdout);
    assert.equal(report.summary.state, "failed");
    assert.match(report.summary.sentence, /1 attempt record\(s\) cannot be used/);
    assert.match(report.attempts.unreadable[0].problem, /not valid JSON/);
  }, { "20261125T203000Z-dddddd.json": "{ truncated" });
});

Deno.test("wait --for=finished exits with the ended attempt's code, or 8 on timeout", async () => {
  const cases: [AttemptStatus, number][] = [
    ["succeeded", 0],
    ["rolled-back", 6],
    ["refused", 5],
    ["failed", 1],
    ["cancelled", 1],
  ];
  for (const [status, code] of cases) {
    await withRecords([record(A, status, 0)], async (root) => {
      const run = await cli(root, "wait", "--for=finished", "--timeout=5s", "--json");
      assert.equal(run.code, code, `${status}: ${run.stderr}`);
      const report = assertDocument("wait", run.stdout);
      assert.equal(report.reached, true);
      assert.equal(report.attempt.status, status);
      assert.equal(report.exit_code, code);
    });
  }
  await withRecords([record(A, "succeeded", 0), record(C, "kexec-issued", 20)], async (root) => {
    const run = await cli(root, "wait", "--for=finished", "--timeout=300ms", "--json");
    assert.equal(run.code, 8);
    const report = assertDocument("wait", run.stdout);
    assert.equal(report.reached, false);
    assert.match(report.message, /attempt 20261125T202000Z-cccccc is still "kexec-issued"/);
    const text = await cli(root, "wait", "--for=finished", "--timeout=200ms");
    assert.equal(text.code, 8);
    assert.match(text.stderr, /error: Timed out: attempt \S+ is still "kexec-issued"\./);
  });
  await withRecords([], async (root) => {
    const bad = await cli(root, "wait", "--for=later");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Option '--for' is "later" but must be one of finished, normal\./);
    const timeout = await cli(root, "wait", "--for=finished", "--timeout=soon");
    assert.equal(timeout.code, 2);
    assert.match(timeout.stderr, /Option '--timeout' is "soon" but must be a duration/);
    const none = await cli(root, "wait", "--for=normal", "--timeout=1s");
    assert.equal(none.code, 4, "no kernel interface: not supported");
  });
});

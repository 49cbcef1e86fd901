/**
 * The mainline path with systemd as PID 1 (Debian bookworm guest, the 7.3 test
 * kernel), driven by tests/mainline/debian/driver.ts:
 *
 * - the update flow: the agent's own units run the agent from source under its
 *   production permission flags; preflight refuses both kexec_load traps; a
 *   client that never reports ready rolls the update back (nothing preserved,
 *   the workload back); then `systemctl start liveupdate-prepare` runs the
 *   barrier and a real KHO kexec, and in the next boot the clients claim their
 *   memfd data intact while liveupdate-finish.service finishes the attempt. The
 *   attempt records are fetched from the guest and asserted on here;
 * - the control experiment: the broker without the "@" argv[0] is killed by
 *   systemd's shutdown and every session is lost — what the unit's shape
 *   prevents.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { AttemptRecord } from "../../agent/store/attempt.ts";
import { buildOptDisk } from "./debian_disk.ts";
import { BUILD_DIR } from "./guest_image.ts";
import { testKernel } from "./kernel.ts";
import { type GuestRecord, runGuest } from "./qemu.ts";

const IMAGE_SCRIPT = fileURLToPath(new URL("./debian_image.sh", import.meta.url));

async function debianImage(): Promise<string> {
  const output = await new Deno.Command("bash", { args: [IMAGE_SCRIPT], stdout: "piped" })
    .output();
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  assert.ok(output.success, "debian_image.sh failed");
  return lines[lines.length - 1]!;
}

type Detail = Record<string, unknown> & { record?: AttemptRecord };
type Expectations = Readonly<Record<number, Readonly<Record<string, (detail: Detail) => void>>>>;

function step(record: AttemptRecord, name: string) {
  const entry = record.steps.find((s) => s.name === name);
  assert.ok(entry, `no step "${name}" in ${JSON.stringify(record.steps.map((s) => s.name))}`);
  return entry;
}

function refused(check: string, message: RegExp) {
  return (detail: Detail) => {
    const record = detail.record!;
    assert.equal(record.status, "refused");
    assert.equal(record.backend, "mainline");
    assert.equal(record.outcome?.exit_code, 5);
    assert.deepEqual(record.steps, [], "a refused update takes no step");
    const problems = record.notes.refused as { check: string; message: string }[];
    const found = problems.find((p) => p.check === check);
    assert.ok(found, `no "${check}" problem in ${JSON.stringify(problems)}`);
    assert.match(found.message, message);
  };
}

/** What the update flow's scenario must show, check by check. */
const FLOW: Expectations = {
  1: {
    "broker-service-starts": () => {},
    "client-services-subscribe": () => {},
    "preflight-refuses-load-kexec": refused("kexec-tools-loader", /LOAD_KEXEC=true.*kexec_load/),
    "preflight-refuses-foreign-kernel": refused("loaded-kernel", /already loaded.*kexec_load/),
    "never-ready-rolled-back": (detail) => {
      const record = detail.record!;
      assert.equal(record.status, "rolled-back");
      assert.equal(record.outcome?.exit_code, 6);
      assert.equal((record.notes.failure as { step: string }).step, "prepare-sessions");
      const barrier = step(record, "prepare-sessions");
      assert.equal(barrier.status, "undone");
      const clients = (barrier.result as { clients: { id: string; problem: string }[] }).clients;
      assert.deepEqual(clients.map((c) => [c.id, c.problem]), [["stuck-1", "not-ready"]]);
      assert.deepEqual((record.notes.rollback as { undone: string[] }).undone, [
        "prepare-sessions",
        "phase-prepare",
        "load-kernel",
      ]);
      assert.deepEqual(detail.holders, []);
      assert.deepEqual(detail.recreated, ["vm-1", "db-1", "stuck-1"]);
    },
    "update-prepared": (detail) => {
      const record = detail.record!;
      assert.equal(record.status, "kexec-issued");
      assert.equal(record.backend, "mainline");
      assert.equal(record.compat.verdict, "compatible");
      for (const kernel of [record.kernels.running, record.kernels.target]) {
        assert.equal(kernel.compatible?.luo, "luo-v5");
        assert.deepEqual(kernel.compatible?.fileHandlers, ["memfd-v2"]);
      }
      assert.deepEqual(
        record.steps.map((s) => [s.name, s.status]),
        [
          ["load-kernel", "done"],
          ["phase-prepare", "done"],
          ["prepare-sessions", "done"],
          ["phase-reboot", "done"],
        ],
      );
      const barrier = step(record, "prepare-sessions").result as { sessions: string[] };
      assert.deepEqual([...barrier.sessions].sort(), ["db-1", "vm-1"]);
      const mainline = (record.plan as { mainline: Record<string, unknown> }).mainline;
      assert.equal(typeof mainline.liveupdateNumber, "number");
      assert.match(String(mainline.bootId), /^[0-9a-f-]{36}$/);
      assert.deepEqual([...(mainline.subscribers as string[])].sort(), ["db-1", "vm-1"]);
      for (const timing of ["preflight_ms", "prepare_ms"]) {
        assert.equal(typeof record.timings[timing], "number", timing);
      }
      assert.equal(typeof record.timings.kexec_issued, "string");
    },
  },
  2: {
    "broker-took-over": () => {},
    "claim-vm-1": () => {},
    "claim-db-1": () => {},
    "update-finished": (detail) => {
      const record = detail.record!;
      assert.equal(record.status, "succeeded", JSON.stringify(record.outcome));
      assert.equal(record.outcome?.exit_code, 0);
      assert.equal((record.notes.boot as { state: string }).state, "updated");
      const verify = step(record, "verify").result as { checks: { what: string; ok: unknown }[] };
      assert.deepEqual(verify.checks.filter((c) => c.ok === false), []);
      for (const what of ["previous-release", "luo-taken-over", "luo-format"]) {
        assert.equal(verify.checks.find((c) => c.what === what)?.ok, true, what);
      }
      assert.deepEqual(
        record.steps.slice(4).map((s) => [s.name, s.status]),
        [
          ["verify", "done"],
          ["phase-updated", "done"],
          ["reclaim-devices", "done"],
          ["claim-sessions", "done"],
          ["finish-kernel", "done"],
          ["phase-finish", "done"],
          ["forget-devices", "done"],
        ],
      );
      const sessions = record.notes.sessions as { finished: string[]; total: number };
      assert.equal(sessions.total, 2);
      assert.deepEqual([...sessions.finished].sort(), ["db-1", "vm-1"]);
      for (const timing of ["blackout_ms", "kexec_to_finish_ms"]) {
        assert.equal(typeof record.timings[timing], "number", timing);
      }
      for (const timing of ["booted", "finished"]) {
        assert.equal(typeof record.timings[timing], "string", timing);
      }
      assert.equal(detail.workload, "active", "phase finish started the workload again");
      assert.equal((detail.sessions as { phase: string }).phase, "done");
    },
  },
};

const CONTROL: Expectations = {
  1: {
    "broker-service-starts": () => {},
    "client-services-subscribe": () => {},
    "prepare-barrier": () => {},
    "kexec-file-load": () => {},
  },
  2: { "sessions-lost-without-at": () => {} },
};

async function scenario(t: Deno.TestContext, variant: string, expected: Expectations) {
  const kernel = await testKernel();
  const root = await debianImage();
  const opt = `${BUILD_DIR}opt-${variant}.img`;
  await Deno.mkdir(BUILD_DIR, { recursive: true });
  await buildOptDisk(kernel.dir, opt);
  const log = `${BUILD_DIR}logs/debian-${variant}.log`;
  try {
    const run = await runGuest({
      kernel: kernel.bzImage,
      base: [
        "console=ttyS0",
        "root=/dev/vda",
        "rw",
        "kho=on",
        "liveupdate=on",
        "kho_scratch=256M,512M,256M",
        "panic=-1",
        "loglevel=4",
        "systemd.show_status=0",
      ],
      append: [`luotest.variant=${variant}`],
      drives: [{ file: root, snapshot: true }, { file: opt, snapshot: true }],
      timeout: 25 * 60_000,
      log,
    });
    const where = `(${variant}; serial log: ${log})`;
    assert.ok(!run.timedOut, `the guest timed out ${where}`);
    assert.ok(!run.panicked, `the guest kernel panicked ${where}`);
    const failed = run.records.find((r) => r.type === "driver-failed");
    assert.equal(failed, undefined, `${failed?.error} ${where}`);
    const checks = run.records.filter((r) => r.type === "check");
    for (const [boot, names] of Object.entries(expected)) {
      for (const [name, assertions] of Object.entries(names)) {
        await t.step(`boot ${boot}: ${name}`, () => {
          const record: GuestRecord | undefined = checks.find((c) =>
            c.boot === Number(boot) && c.name === name
          );
          assert.ok(record, `check "${name}" did not run in boot ${boot} ${where}`);
          assert.ok(record.ok, `${record.error} ${where}`);
          assertions(record.detail as Detail);
        });
      }
    }
  } finally {
    await Deno.remove(opt).catch(() => undefined);
  }
}

Deno.test("mainline update flow under systemd: refusals, a rollback, a live update with claims", (t) =>
  scenario(t, "flow", FLOW));

Deno.test('control: without the "@" argv[0] systemd\'s shutdown kills the broker and the sessions are lost', (t) =>
  scenario(t, "no-at", CONTROL));

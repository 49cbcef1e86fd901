/**
 * The mainline path with systemd as PID 1 (Debian bookworm guest, the 7.3 test
 * kernel): the broker as units/liveupdate-sessions.service with client
 * services, the kexec_load trap refused by preflight with the real kexec-tools,
 * the barrier, a real `systemctl kexec` — systemd's shutdown must leave the
 * broker (argv[0] "@") holding the sessions — and the clients claiming their
 * data in the next boot. What needs the update flow (liveupdate-prepare.service,
 * records, rollback of units) is not here yet.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { buildOptDisk } from "./debian_disk.ts";
import { BUILD_DIR } from "./guest_image.ts";
import { testKernel } from "./kernel.ts";
import { runGuest } from "./qemu.ts";

const IMAGE_SCRIPT = fileURLToPath(new URL("./debian_image.sh", import.meta.url));

const EXPECTED: Readonly<Record<number, readonly string[]>> = {
  1: [
    "broker-service-starts",
    "client-services-subscribe",
    "kexec-load-trap-refused",
    "prepare-barrier",
    "kexec-file-load",
  ],
  2: ["broker-survived-and-restarted", "claim-vm-1", "claim-db-1", "record-settled"],
};

async function debianImage(): Promise<string> {
  const output = await new Deno.Command("bash", { args: [IMAGE_SCRIPT], stdout: "piped" })
    .output();
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  assert.ok(output.success, "debian_image.sh failed");
  return lines[lines.length - 1]!;
}

interface Scenario {
  name: string;
  variant: "normal" | "no-at";
  expected: Readonly<Record<number, readonly string[]>>;
}

async function scenario(t: Deno.TestContext, { name, variant, expected }: Scenario) {
  const kernel = await testKernel();
  const root = await debianImage();
  const opt = `${BUILD_DIR}opt-${variant}.img`;
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
      timeout: 20 * 60_000,
      log,
    });
    const where = `(${name}; serial log: ${log})`;
    assert.ok(!run.timedOut, `the guest timed out ${where}`);
    assert.ok(!run.panicked, `the guest kernel panicked ${where}`);
    const failed = run.records.find((r) => r.type === "driver-failed");
    assert.equal(failed, undefined, `${failed?.error} ${where}`);
    const checks = run.records.filter((r) => r.type === "check");
    for (const [boot, names] of Object.entries(expected)) {
      for (const check of names) {
        await t.step(`boot ${boot}: ${check}`, () => {
          const record = checks.find((c) => c.boot === Number(boot) && c.name === check);
          assert.ok(record, `check "${check}" did not run in boot ${boot} ${where}`);
          assert.ok(record.ok, `${record.error} ${where}`);
        });
      }
    }
  } finally {
    await Deno.remove(opt).catch(() => undefined);
  }
}

Deno.test("mainline under systemd: broker service, kexec_load trap, systemctl kexec, claims", (t) =>
  scenario(t, { name: "with @", variant: "normal", expected: EXPECTED }));

Deno.test('control: without the "@" argv[0] systemd\'s shutdown kills the broker and the sessions are lost', (t) =>
  scenario(t, {
    name: "without @",
    variant: "no-at",
    expected: { 1: EXPECTED[1]!, 2: ["sessions-lost-without-at"] },
  }));

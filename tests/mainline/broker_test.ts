/**
 * The session broker on the real Linux 7.3 kernel: the guest runs
 * tests/mainline/guest/broker_checks.ts with the agent's real `sessions serve`
 * and the example client as separate processes, a rollback, a successful
 * barrier, a real KHO kexec with the broker holding every session, and the
 * claims (and one unclaimed session) in the next kernel. The broker's state
 * directory is an ext4 disk that survives the kexec, as /var/lib would.
 */

import assert from "node:assert/strict";
import { bootGuest } from "./guest_image.ts";

const EXPECTED: Readonly<Record<number, readonly string[]>> = {
  1: [
    "broker-starts",
    "rollback-when-a-client-is-not-ready",
    "rollback-unpreserves",
    "subscribe-refusals",
    "prepare-barrier",
    "broker-holds-sessions-without-clients",
    "kexec-file-load",
  ],
  2: [
    "broker-takes-over-record",
    "claim-vm-1",
    "claim-db-1",
    "claim-unknown-session",
    "unclaimed-session-finished-and-reported",
  ],
};

Deno.test("session broker on a real 7.3 kernel: rollback, barrier, kexec, claims", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-mainline-state-" });
  try {
    const disk = `${dir}/state.img`;
    const file = await Deno.open(disk, { write: true, create: true });
    await file.truncate(64 * 1024 * 1024);
    file.close();
    const mkfs = await new Deno.Command("mkfs.ext4", { args: ["-q", "-F", disk] }).output();
    assert.ok(mkfs.success, "mkfs.ext4 failed");
    const run = await bootGuest("broker", "tests/mainline/guest/broker_checks.ts", {
      stateDisk: disk,
    });
    const where = `(serial log: ${run.log})`;
    assert.ok(!run.timedOut, `the guest timed out ${where}`);
    assert.ok(!run.panicked, `the guest kernel panicked ${where}`);
    assert.deepEqual(run.exits, [0], `the guest program did not end cleanly ${where}`);
    assert.ok(run.records.some((r) => r.type === "kexec"), `no kexec happened ${where}`);
    const checks = run.records.filter((r) => r.type === "check");
    for (const [boot, names] of Object.entries(EXPECTED)) {
      for (const name of names) {
        await t.step(`boot ${boot}: ${name}`, () => {
          const record = checks.find((c) => c.boot === Number(boot) && c.name === name);
          assert.ok(record, `check "${name}" did not run in boot ${boot} ${where}`);
          assert.ok(record.ok, `${record.error} ${where}`);
        });
      }
    }
    await t.step("the broker stopped cleanly in the second boot", () => {
      const exit = run.records.find((r) => r.type === "broker-exit");
      assert.equal(exit?.code, 0, where);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

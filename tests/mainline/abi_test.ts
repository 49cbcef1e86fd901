/**
 * The mainline backend on the real Linux 7.3 kernel: boots the test guest, which
 * runs tests/mainline/guest/abi_checks.ts — every request of the backend with its
 * successes and errnos, a real KHO kexec through kexec_file_load, and the same
 * sessions retrieved, checked and finished in the next kernel. One step per
 * check; a check that did not run fails too.
 */

import assert from "node:assert/strict";
import { assertDocument } from "../tools/assert_document.ts";
import { bootGuest, BUILD_DIR } from "./guest_image.ts";
import type { GuestRecord } from "./qemu.ts";

/** Every check the guest must report, per boot. */
const EXPECTED: Readonly<Record<number, readonly string[]>> = {
  1: [
    "device-node",
    "open-exclusive",
    "open-busy-retried",
    "status-json",
    "create-session",
    "device-closed-after-request",
    "create-duplicate-name",
    "create-name-limits",
    "struct-size-rules",
    "get-name",
    "preserve-memfd",
    "preserve-same-file-twice",
    "preserve-in-second-session",
    "preserve-token-taken",
    "preserve-pipe",
    "preserve-tmpfs-file",
    "preserve-unlinked-tmpfs-file",
    "preserve-bad-fd",
    "write-after-preserve",
    "retrieve-fd-on-outgoing",
    "finish-on-outgoing",
    "retrieve-session-in-cold-boot",
    "closed-session-unpreserves",
    "unclaimed-session",
    "kho-out",
    "compat-running-vs-target",
    "preflight-before-load",
    "kexec-file-load",
  ],
  2: [
    "kho-in",
    "handover-verified",
    "status-json-after-kexec",
    "first-open-after-kexec",
    "retrieve-session",
    "retrieve-session-twice",
    "retrieve-closed-session",
    "retrieve-fd-data-intact",
    "retrieve-fd-written-after-preserve",
    "retrieve-fd-twice",
    "retrieve-fd-unknown-token",
    "preserve-on-incoming",
    "finish",
    "data-kept-after-finish",
    "empty-session",
    "unclaimed-session-finished-unretrieved",
    "outgoing-name-reused",
  ],
};

Deno.test("mainline ABI on a real 7.3 kernel, across a KHO kexec", async (t) => {
  const run = await bootGuest("abi", "tests/mainline/guest/abi_checks.ts");
  const where = `(serial log: ${run.log})`;
  assert.ok(!run.timedOut, `the guest timed out ${where}`);
  assert.ok(!run.panicked, `the guest kernel panicked ${where}`);
  assert.deepEqual(run.exits, [0], `the guest program did not end cleanly ${where}`);
  const checks = run.records.filter((record) => record.type === "check");
  const kexec = run.records.find((record) => record.type === "kexec");
  const boots = run.records.filter((record) => record.type === "boot");
  assert.ok(kexec, `no kexec happened ${where}`);
  assert.deepEqual(boots.map((record) => record.boot), [1, 2], `boots ${where}`);
  for (const [boot, names] of Object.entries(EXPECTED)) {
    for (const name of names) {
      await t.step(`boot ${boot}: ${name}`, () => {
        const record = checks.find((c) => c.boot === Number(boot) && c.name === name) as
          | GuestRecord
          | undefined;
        assert.ok(record, `check "${name}" did not run in boot ${boot} ${where}`);
        assert.ok(record.ok, `${record.error} ${where}`);
        // status --json on the real kernel matches the one schema both backends share.
        if (name.startsWith("status-json")) {
          const document = (record.detail as { document: unknown }).document;
          assert.equal(assertDocument("status", document).kernel.backend, "mainline");
        }
      });
    }
  }
  // Timings for the README (recorded, never asserted).
  const detail = (name: string) =>
    checks.find((c) => c.name === name)?.detail as Record<string, number> | undefined;
  await Deno.writeTextFile(
    `${BUILD_DIR}measurements-abi.json`,
    JSON.stringify(
      {
        measuredAt: new Date().toISOString(),
        load: Deno.loadavg(),
        qemuStartToInitMs: Math.round(run.inits[0] ?? -1),
        kexecFileLoadMs: detail("kexec-file-load")?.loadMs,
        rebootToNextInitMs: Math.round((run.inits[1] ?? 0) - (kexec.hostMs as number)),
        finishMs: detail("finish")?.finishMs,
        wholeRunMs: Math.round(run.duration),
      },
      null,
      2,
    ) + "\n",
  );

  await t.step("no unexpected checks", () => {
    const known = new Set(Object.entries(EXPECTED).flatMap(([b, n]) => n.map((x) => `${b}:${x}`)));
    const extra = checks.filter((c) => !known.has(`${c.boot}:${c.name}`));
    assert.deepEqual(extra.map((c) => `${c.boot}:${c.name}`), []);
  });
});

/**
 * Under systemd (`JOURNAL_STREAM` set, log format "auto") the CLI sends every
 * record to the journal natively: a whole update on the simulated machine, with a
 * datagram socket bound in place of journald's, receives a MESSAGE_ID and the
 * LIVEUPDATE_* fields for every step and outcome. Without a usable socket the
 * records fall back to `<N>`-prefixed standard error.
 */

import assert from "node:assert/strict";
import { runCli } from "../../agent/cli/mod.ts";
import { createTestHost, libcKernelFs, openLibc } from "../../agent/host/mod.ts";
import { sendDatagram } from "../../agent/host/unix_datagram.ts";
import { decodeJournalRecord, EVENTS } from "../../agent/log/mod.ts";
import { dbusNextConnector } from "../../agent/systemd/dbus_next.ts";
import { SMALL, startUpdateRig, type UpdateRig } from "./_update_rig.ts";

/** A socket in place of journald's; `stop()` returns every record it received. */
async function fakeJournal(path: string): Promise<{ stop(): Promise<Record<string, string>[]> }> {
  const worker = new Worker(new URL("./_journal_socket_worker.ts", import.meta.url), {
    type: "module",
  });
  const records: Record<string, string>[] = [];
  let problem: string | undefined;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => done = resolve);
  const ready = new Promise<void>((resolve, reject) => {
    worker.onmessage = (event) => {
      const data = event.data as {
        ready?: true;
        datagram?: Uint8Array;
        error?: string;
        done?: true;
      };
      if (data.ready) resolve();
      if (data.datagram) records.push(decodeJournalRecord(data.datagram));
      if (data.error) {
        problem = data.error;
        reject(new Error(data.error));
      }
      if (data.done) done();
    };
  });
  worker.postMessage({ path });
  try {
    await ready;
  } catch (error) {
    worker.terminate();
    throw error;
  }
  return {
    async stop() {
      const libc = openLibc();
      try {
        sendDatagram(libc, path, new TextEncoder().encode("STOP"));
      } finally {
        libc.close();
      }
      await finished;
      worker.terminate();
      if (problem) throw new Error(problem);
      return records;
    },
  };
}

function cli(rig: UpdateRig, argv: string[], journalSocket: string) {
  const host = createTestHost({ env: { JOURNAL_STREAM: "8:4242" }, dbus: dbusNextConnector });
  const run = runCli([...argv, `--config-root=${rig.configRoot}`], host, {
    platform: { libc: () => rig.libc, kernelFs: () => libcKernelFs(rig.libc) },
    journalSocket,
  });
  return { host, run };
}

Deno.test("under systemd a whole update is journaled natively with a MESSAGE_ID per event", async () => {
  await using rig = await startUpdateRig();
  await rig.start("vmm.service");
  const socket = `${rig.dir}/journal.socket`;
  const journal = await fakeJournal(socket);
  let records: Record<string, string>[] = [];
  let stderr = "";
  try {
    const prepare = cli(rig, ["prepare"], socket);
    assert.equal(await prepare.run, 0, prepare.host.stderr.text());
    stderr += prepare.host.stderr.text();
    const reclaim = (async () => {
      for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
    })();
    const finish = cli(rig, ["finish"], socket);
    assert.equal(await finish.run, 0, finish.host.stderr.text());
    await reclaim;
    stderr += finish.host.stderr.text();
  } finally {
    records = await journal.stop();
  }
  assert.equal(stderr, "", "nothing went to standard error");
  const attempt = (await rig.record())!.id;
  for (const record of records) {
    assert.equal(record.SYSLOG_IDENTIFIER, "liveupdate-agent");
    assert.match(record.PRIORITY!, /^[0-7]$/);
    assert.ok(record.MESSAGE, "every record has a message");
  }
  const events = records.filter((record) => record.LIVEUPDATE_EVENT);
  for (const record of events) {
    const kind = EVENTS[record.LIVEUPDATE_EVENT as keyof typeof EVENTS];
    assert.ok(kind, `known event ${record.LIVEUPDATE_EVENT}`);
    assert.equal(record.MESSAGE_ID, kind.id, record.LIVEUPDATE_EVENT);
    assert.equal(
      record.LIVEUPDATE_ATTEMPT,
      attempt,
      `${record.LIVEUPDATE_EVENT} names the attempt`,
    );
  }
  const seen = new Set(events.map((record) => record.LIVEUPDATE_EVENT));
  for (
    const name of [
      "update-started",
      "step-started",
      "step-done",
      "devices-requested",
      "kexec-loaded",
      "phase-done",
      "kernel-prepared",
      "kexec-issued",
      "update-succeeded",
    ]
  ) assert.ok(seen.has(name), `${name} was journaled`);
  const steps = events.filter((r) => r.LIVEUPDATE_EVENT === "step-done").map((r) =>
    r.LIVEUPDATE_STEP
  );
  assert.deepEqual(steps, [
    "request-devices",
    "load-kernel",
    "phase-prepare",
    "prepare-kernel",
    "phase-reboot",
  ]);
  const phases = events.filter((r) => r.LIVEUPDATE_EVENT === "phase-done").map((r) =>
    r.LIVEUPDATE_PHASE
  );
  assert.deepEqual(phases, ["prepare", "reboot", "updated", "finish"]);
});

Deno.test("without a usable journal socket the CLI falls back to <N>-prefixed standard error", async () => {
  await using rig = await startUpdateRig();
  const wait = cli(rig, ["wait", "--for=normal", "--timeout=10s"], `${rig.dir}/no-such.socket`);
  assert.equal(await wait.run, 0);
  const lines = wait.host.stderr.text().trimEnd().split("\n");
  assert.match(
    lines[0]!,
    /^<4>Cannot send to the journal's socket \(ENOENT\); logging to standard error/,
  );
  assert.match(lines.at(-1)!, /^<6>The kernel's live-update state is "normal"\.$/);
});

import assert from "node:assert/strict";
import { captureOutput, fixedClock, openLibc } from "../host/mod.ts";
import { sockaddrUn } from "../host/unix_datagram.ts";
import { EVENTS, renderCatalog } from "./events.ts";
import { decodeJournalRecord, encodeJournalRecord, journalFieldName } from "./journal_native.ts";
import { createLogger, journalSink, streamSink } from "./logger.ts";

const time = new Date("2026-11-25T20:00:00Z");

Deno.test("records encode as journald native fields with MESSAGE_ID and LIVEUPDATE_*", () => {
  const fields = decodeJournalRecord(encodeJournalRecord({
    time,
    level: "error",
    message: "Unit failed\nsecond line",
    fields: {
      event: "unit-failed",
      attempt: "a1",
      unit: "vmm.service",
      phase: "prepare",
      skip: undefined,
    },
  }));
  assert.deepEqual(fields, {
    MESSAGE: "Unit failed\nsecond line",
    PRIORITY: "3",
    SYSLOG_IDENTIFIER: "liveupdate-agent",
    MESSAGE_ID: EVENTS["unit-failed"].id,
    LIVEUPDATE_EVENT: "unit-failed",
    LIVEUPDATE_ATTEMPT: "a1",
    OBJECT_SYSTEMD_UNIT: "vmm.service",
    LIVEUPDATE_UNIT: "vmm.service",
    LIVEUPDATE_PHASE: "prepare",
  });
  assert.equal(journalFieldName("exit-code"), "LIVEUPDATE_EXIT_CODE");
});

Deno.test("the journal sink sends datagrams to the socket and falls back when it is gone", async () => {
  using libc = openLibc();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/journal.socket`;
  const fd = libc.symbols.socket(1, 2, 0);
  try {
    const { address, length } = sockaddrUn(path);
    assert.equal(libc.symbols.bind(fd, address, length), 0, libc.errnoName());
    const fallback = captureOutput();
    const log = createLogger({
      sink: journalSink(() => libc, streamSink(fallback, "journal"), path),
      clock: fixedClock(time),
      level: "info",
    });
    log.with({ attempt: "a7" }).event("kexec-issued", "Kexec issued");
    const buffer = new Uint8Array(4096);
    const count = Number(libc.symbols.read(fd, buffer, 4096n));
    const fields = decodeJournalRecord(buffer.subarray(0, count));
    assert.equal(fields.MESSAGE, "Kexec issued");
    assert.equal(fields.PRIORITY, "5");
    assert.equal(fields.MESSAGE_ID, EVENTS["kexec-issued"].id);
    assert.equal(fields.LIVEUPDATE_ATTEMPT, "a7");
    assert.equal(fallback.text(), "");
    await Deno.remove(path);
    log.warning("After the journal went away");
    assert.equal(
      fallback.text(),
      `<4>Cannot send to the journal's socket (ENOENT); logging to standard error from now on. ` +
        `(socket=${path})\n<4>After the journal went away\n`,
    );
    log.info("Later records go straight to standard error");
    assert.match(fallback.text(), /\n<6>Later records go straight to standard error\n$/);
  } finally {
    libc.symbols.close(fd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every event has a unique 128-bit id and the shipped catalog is current", async () => {
  const ids = Object.values(EVENTS).map((event) => event.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
  const shipped = await Deno.readTextFile(
    new URL("../../units/liveupdate-agent.catalog", import.meta.url),
  );
  assert.equal(shipped, renderCatalog(), "regenerate units/liveupdate-agent.catalog");
});

Deno.test("journalctl --update-catalog accepts the shipped catalog", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/usr/lib/systemd/catalog`, { recursive: true });
    await Deno.copyFile(
      new URL("../../units/liveupdate-agent.catalog", import.meta.url),
      `${root}/usr/lib/systemd/catalog/liveupdate-agent.catalog`,
    );
    const update = await new Deno.Command("journalctl", {
      args: [`--root=${root}`, "--update-catalog"],
    }).output();
    assert.equal(update.code, 0, new TextDecoder().decode(update.stderr));
    const list = await new Deno.Command("journalctl", {
      args: [`--root=${root}`, "--list-catalog"],
    }).output();
    const text = new TextDecoder().decode(list.stdout);
    for (const event of Object.values(EVENTS)) assert.ok(text.includes(event.id), event.id);
    const dump = await new Deno.Command("journalctl", {
      args: [`--root=${root}`, "--dump-catalog", EVENTS["rolled-back"].id],
    }).output();
    assert.match(
      new TextDecoder().decode(dump.stdout),
      /Subject: Live update @LIVEUPDATE_ATTEMPT@ rolled back/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

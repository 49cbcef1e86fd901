import assert from "node:assert/strict";
import { captureOutput, fixedClock } from "../host/mod.ts";
import { formatRecord, type LogRecord } from "./format.ts";
import { createLogger, resolveFormat, streamSink } from "./logger.ts";

const time = new Date("2026-11-25T20:00:00.000Z");
const record = (level: LogRecord["level"], message: string, fields = {}): LogRecord => ({
  time,
  level,
  message,
  fields,
});

Deno.test("journal format prefixes the syslog priority of each level", () => {
  const expected = { debug: 7, info: 6, notice: 5, warning: 4, error: 3 } as const;
  for (const [level, priority] of Object.entries(expected)) {
    const line = formatRecord(record(level as LogRecord["level"], "Hello"), "journal");
    assert.equal(line, `<${priority}>Hello\n`);
  }
});

Deno.test("journal format appends fields and keeps one line per record", () => {
  const line = formatRecord(
    record("warning", "Unit failed\nsecond line", { unit: "vmm.service", reason: "exit code 1" }),
    "journal",
  );
  assert.equal(line, '<4>Unit failed ⏎ second line (unit=vmm.service reason="exit code 1")\n');
  assert.equal(line.split("\n").length, 2);
});

Deno.test("text format labels warnings and errors only", () => {
  assert.equal(formatRecord(record("info", "Prepared"), "text"), "Prepared\n");
  assert.equal(
    formatRecord(record("error", "Failed", { phase: "prepare" }), "text"),
    "error: Failed  phase=prepare\n",
  );
  const colored = formatRecord(record("error", "Failed"), "text", true);
  assert.equal(colored, "\x1b[31merror: Failed\x1b[0m\n");
});

Deno.test("json format is one object per line with time, level, priority and fields", () => {
  const line = formatRecord(
    record("notice", "Done", { attempt: "a1", skipped: undefined, count: 3, message: "x" }),
    "json",
  );
  assert.ok(line.endsWith("}\n"));
  assert.deepEqual(JSON.parse(line), {
    attempt: "a1",
    count: 3,
    time: "2026-11-25T20:00:00.000Z",
    level: "notice",
    priority: 5,
    message: "Done",
  });
});

Deno.test("logger filters by level and binds fields", () => {
  const output = captureOutput();
  const sink = streamSink(output, "journal");
  const log = createLogger({ sink, clock: fixedClock(time), level: "notice" });
  log.info("hidden");
  log.debug("hidden");
  const attempt = log.with({ attempt: "a7" });
  attempt.notice("shown", { phase: "prepare" });
  attempt.error("bad");
  assert.equal(output.text(), "<5>shown (attempt=a7 phase=prepare)\n<3>bad (attempt=a7)\n");
});

Deno.test("auto format picks journal only when JOURNAL_STREAM is set and stderr is no terminal", () => {
  const env = (value?: string) => ({
    get: (name: string) => name === "JOURNAL_STREAM" ? value : undefined,
  });
  assert.equal(resolveFormat("auto", env("8:12345"), captureOutput(false)), "journal");
  assert.equal(resolveFormat("auto", env("8:12345"), captureOutput(true)), "text");
  assert.equal(resolveFormat("auto", env(undefined), captureOutput(false)), "text");
  assert.equal(resolveFormat("auto", env("garbage"), captureOutput(false)), "text");
  assert.equal(resolveFormat("json", env("8:1"), captureOutput(false)), "json");
});

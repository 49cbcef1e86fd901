import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "./duration.ts";

Deno.test("parseDuration reads systemd-style durations", () => {
  const cases: [string, number | undefined][] = [
    ["90s", 90_000],
    ["5min", 300_000],
    ["1h 30min", 5_400_000],
    ["1min30s", undefined],
    ["1min 30s", 90_000],
    ["250ms", 250],
    ["2 min", 120_000],
    ["0.5s", 500],
    ["42", 42_000],
    ["", undefined],
    ["10 parsecs", undefined],
    ["-5s", undefined],
    ["s", undefined],
  ];
  for (const [text, expected] of cases) {
    assert.equal(parseDuration(text), expected, `parseDuration(${JSON.stringify(text)})`);
  }
});

Deno.test("formatDuration writes the shortest exact text and round-trips", () => {
  assert.equal(formatDuration(90_000), "1min 30s");
  assert.equal(formatDuration(120_000), "2min");
  assert.equal(formatDuration(250), "250ms");
  assert.equal(formatDuration(0), "0s");
  for (const ms of [1, 999, 1000, 61_001, 3_600_000, 5_400_250]) {
    assert.equal(parseDuration(formatDuration(ms)), ms);
  }
});

import assert from "node:assert/strict";
import { captureOutput } from "../host/mod.ts";
import { createProgress, formatSeconds } from "./progress.ts";

function clock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => now += ms };
}

Deno.test("plain progress: a line when a task starts and one when it ends, notes between", () => {
  const output = captureOutput(false);
  const time = clock();
  const progress = createProgress({ output, now: time.now });
  progress.section("liveupdate-agent prepare", "what the unit runs");
  const task = progress.begin("phase-prepare");
  progress.note("vm-checkpoint: VM web paused");
  time.advance(310);
  task.end("done", "started vm-checkpoint.service");
  progress.begin("kexec").end("failed", "no");
  progress.close();
  assert.equal(
    output.text(),
    "\nliveupdate-agent prepare  what the unit runs\n" +
      "  ▸ phase-prepare\n" +
      "      │ vm-checkpoint: VM web paused\n" +
      "  ✓ phase-prepare    started vm-checkpoint.service  0.31s\n" +
      "  ▸ kexec\n" +
      "  ✗ kexec            no  0.00s\n",
  );
});

Deno.test("live progress: the running task is redrawn in place and cleared when it ends", () => {
  const output = captureOutput(true);
  const time = clock();
  const progress = createProgress({ output, now: time.now, columns: () => 40 });
  const task = progress.begin("phase-updated", "a detail much longer than the terminal is wide");
  progress.note("kernel: 0000:01:00.0 re-attached");
  time.advance(1500);
  task.end("done");
  progress.close();
  const text = output.text();
  // Drawn once, then cleared (cursor up one line, clear to the end) before the note,
  // drawn again under it, and cleared once more before the final line.
  const clear = "\x1b[1A\x1b[0J";
  assert.equal(text.split(clear).length - 1, 2);
  assert.match(text, /^ {2}⠋ phase-updated +a detail mu… 0\.00s\n/);
  assert.ok(text.includes(`${clear}      │ kernel: 0000:01:00.0 re-attached\n`), text);
  assert.ok(
    text.endsWith(
      `${clear}  ✓ phase-updated    a detail much longer than the terminal is wide  1.5s\n`,
    ),
    text,
  );
  for (const line of text.split("\n").filter((l) => l.includes("⠋"))) {
    assert.ok(line.length <= 40, `live line fits the terminal: ${JSON.stringify(line)}`);
  }
});

Deno.test("seconds read well at every size", () => {
  assert.equal(formatSeconds(40), "0.04s");
  assert.equal(formatSeconds(1234), "1.2s");
  assert.equal(formatSeconds(61_000), "61s");
});

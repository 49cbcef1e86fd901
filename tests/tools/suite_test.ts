import assert from "node:assert/strict";
import { parseSummary } from "./suite.ts";

Deno.test("parseSummary reads deno test's closing line, with colours and steps", () => {
  assert.deepEqual(parseSummary("x\nok | 12 passed (3 steps) | 0 failed (2s)\n"), {
    passed: 12,
    failed: 0,
  });
  assert.deepEqual(
    parseSummary("\x1b[31mFAILED\x1b[0m | 5 passed | 2 failed \x1b[38;5;245m(1s)\x1b[0m\n"),
    { passed: 5, failed: 2 },
  );
  assert.equal(parseSummary("no summary here"), undefined);
});

import assert from "node:assert/strict";
import { backoff, jittered, MAX_BACKOFF_FACTOR } from "./retry.ts";

Deno.test("jitter spreads the interval evenly either way", () => {
  assert.equal(jittered(30_000, 25, () => 0), 22_500);
  assert.equal(jittered(30_000, 25, () => 0.5), 30_000);
  assert.equal(jittered(30_000, 25, () => 0.999999), 37_500);
  assert.equal(jittered(30_000, 0, () => 0), 30_000);
  const seen = Array.from({ length: 1000 }, () => jittered(1000, 50));
  assert.ok(seen.every((ms) => ms >= 500 && ms <= 1500));
  assert.ok(new Set(seen).size > 100, "delays differ");
});

Deno.test("errors back off up to a bound", () => {
  const half = () => 0.5;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 10].map((failures) => backoff(1000, failures, 25, half)),
    [1000, 2000, 4000, 8000, 8000, 8000],
  );
  assert.equal(MAX_BACKOFF_FACTOR, 8);
});

import assert from "node:assert/strict";
import { closest, editDistance } from "./suggest.ts";

Deno.test("editDistance counts insertions, deletions and substitutions", () => {
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("same", "same"), 0);
});

Deno.test("closest suggests only plausible typos", () => {
  assert.equal(closest("watch_intervall", ["watch_interval", "device"]), "watch_interval");
  assert.equal(closest("stauts", ["status", "config"]), "status");
  assert.equal(closest("xyz", ["status", "config"]), undefined);
});

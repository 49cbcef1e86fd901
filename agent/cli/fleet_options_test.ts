import assert from "node:assert/strict";
import { fleetOverride } from "./fleet_options.ts";

Deno.test("--now becomes a recorded window override, with its reason", () => {
  assert.equal(fleetOverride({ values: {}, positionals: [] }), undefined);
  assert.deepEqual(fleetOverride({ values: { now: true }, positionals: [] }), {
    reason: "--now given on the command line",
  });
  assert.deepEqual(
    fleetOverride({ values: { now: true, "now-reason": " CVE-2026-1234 " }, positionals: [] }),
    { reason: "--now: CVE-2026-1234" },
  );
  assert.equal(fleetOverride({ values: { "now-reason": "x" }, positionals: [] }), undefined);
});

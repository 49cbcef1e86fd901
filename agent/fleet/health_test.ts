import assert from "node:assert/strict";
import {
  configuredHealthGate,
  healthGate,
  type ReclaimReader,
  type UnitStateReader,
} from "./health.ts";

const units = (states: Record<string, string>): UnitStateReader => ({
  activeState: (unit) => Promise.resolve(states[unit] ?? "inactive"),
});
const devices = (left: string[]): ReclaimReader => ({ unreclaimed: () => Promise.resolve(left) });

Deno.test("the configured gate checks units and reclaimed devices", async () => {
  const config = { units: ["vmm.service", "storage.target"], devices_reclaimed: true };
  const good = await configuredHealthGate(config, {
    units: units({ "vmm.service": "active", "storage.target": "active" }),
    devices: devices([]),
  }).check();
  assert.deepEqual(good, {
    healthy: true,
    checks: [
      { name: "units-active", ok: true, detail: "2 unit(s) active" },
      { name: "devices-reclaimed", ok: true, detail: "every preserved device reclaimed" },
    ],
  });
  const bad = await configuredHealthGate(config, {
    units: units({ "vmm.service": "failed", "storage.target": "active" }),
    devices: devices(["a", "b", "c", "d", "e", "f", "g"]),
  }).check();
  assert.equal(bad.healthy, false);
  assert.equal(bad.checks[0]!.detail, "vmm.service is failed");
  assert.equal(bad.checks[1]!.detail, "not reclaimed: a, b, c, d, e and 2 more");
});

Deno.test("a check that throws fails the gate with its message; providers are required", async () => {
  const report = await healthGate([{
    name: "custom",
    check: () => Promise.reject(new Error("D-Bus connection lost")),
  }]).check();
  assert.deepEqual(report, {
    healthy: false,
    checks: [{ name: "custom", ok: false, detail: "check failed: D-Bus connection lost" }],
  });
  assert.throws(
    () => configuredHealthGate({ units: ["a.service"], devices_reclaimed: false }, {}),
    /fleet\.health\.units needs a UnitStateReader/,
  );
  assert.throws(
    () => configuredHealthGate({ units: [], devices_reclaimed: true }, {}),
    /fleet\.health\.devices_reclaimed needs a ReclaimReader/,
  );
  const none = await configuredHealthGate({ units: [], devices_reclaimed: false }, {}).check();
  assert.deepEqual(none, { healthy: true, checks: [] });
});

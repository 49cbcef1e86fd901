import assert from "node:assert/strict";
import { captureOutput } from "../host/mod.ts";
import { createLogger } from "../log/mod.ts";
import {
  FLEET_STATE_VERSION,
  type FleetRuntimeState,
  FleetStateFile,
  readFleetState,
} from "./state_file.ts";

Deno.test("the state file is replaced whole and read back; a bad one is named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-fleet-state-" });
  try {
    assert.equal(await readFleetState(Deno, `${dir}/run`), undefined);
    const output = captureOutput();
    const log = createLogger({
      output,
      clock: { now: () => new Date(0) },
      level: "info",
      format: "text",
    });
    const file = new FleetStateFile(Deno, `${dir}/run`, log);
    const state: FleetRuntimeState = {
      version: FLEET_STATE_VERSION,
      pid: 1,
      host_id: "h",
      group: "g",
      backend: "etcd",
      phase: "waiting-slot",
      since: "2026-01-01T00:00:00.000Z",
      updated_at: "2026-01-01T00:00:00.000Z",
      attempts: 3,
      window: { description: "any time", open: true },
    };
    await file.write(state);
    assert.deepEqual(await readFleetState(Deno, `${dir}/run`), state);
    assert.deepEqual([...Deno.readDirSync(`${dir}/run`)].map((e) => e.name), ["fleet.json"]);
    await Deno.writeTextFile(`${dir}/run/fleet.json`, "{");
    await assert.rejects(
      readFleetState(Deno, `${dir}/run`),
      /fleet\.json" is not JSON\. Remove it/,
    );
    await Deno.writeTextFile(`${dir}/run/fleet.json`, '{"version": 99}');
    await assert.rejects(readFleetState(Deno, `${dir}/run`), /is not a version 1 fleet state/);
    // A state that cannot be written is a warning, never a failure.
    await Deno.writeTextFile(`${dir}/file`, "");
    await new FleetStateFile(Deno, `${dir}/file`, log).write(state);
    assert.match(
      output.text(),
      /^warning: Could not write the fleet state file ".*file\/fleet\.json"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

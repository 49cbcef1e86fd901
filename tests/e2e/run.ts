// deno-lint-ignore-file no-console -- a developer tool that prints its results
/**
 * Runs VM scenarios by hand, pending ones included:
 *
 *     deno run --allow-all tests/e2e/run.ts smoke
 *     deno run --allow-all tests/e2e/run.ts --keep cold_reboot   # keep the run's files
 *     deno run --allow-all tests/e2e/run.ts --list
 *
 * Builds (or reuses) the image, runs each scenario, prints its timings, and on
 * a failure its records, journal and console. Exits 1 when any failed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ensureImage } from "./image.ts";
import { assertScenario, printTimings, runScenario } from "./scenario.ts";
import { SCENARIOS } from "./scenarios/mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { keep: { type: "boolean" }, list: { type: "boolean" } },
  allowPositionals: true,
  strict: true,
});

if (values.list || positionals.length === 0) {
  for (const scenario of SCENARIOS) {
    console.log(
      `${scenario.name.padEnd(22)} ${scenario.summary}${
        scenario.pending ? ` [pending: ${scenario.pending}]` : ""
      }`,
    );
  }
  Deno.exit(positionals.length === 0 && !values.list ? 2 : 0);
}

const chosen = positionals.map((name) => {
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) {
    console.error(`Unknown scenario '${name}'; known: ${SCENARIOS.map((s) => s.name).join(", ")}`);
    Deno.exit(2);
  }
  return scenario;
});
if (values.keep) Deno.env.set("LIVEUPDATE_VM_KEEP", "1");

const image = await ensureImage();
let failed = 0;
for (const scenario of chosen) {
  const result = await runScenario(image, scenario);
  printTimings(result);
  try {
    assertScenario(result);
    console.log(`${scenario.name}: passed`);
  } catch (error) {
    failed++;
    console.log(`${scenario.name}: FAILED: ${error instanceof Error ? error.message : error}`);
  }
}
Deno.exit(failed > 0 ? 1 : 0);

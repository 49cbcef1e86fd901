/**
 * The hostile-input corpus (issue 9): every case of every table (`cases.ts`) runs
 * the real CLI as a subprocess against a fresh plain-file host with its malformed
 * input, and must get the documented exit code and a clear error — no crash, no
 * stack trace, no hang, no secret in the output, nothing changed outside the
 * allowed paths, and (for the traced sample) no write of the agent's process
 * outside them. See `_run.ts` for every check.
 *
 * Cases that need systemd share one private manager and run one at a time.
 */

import assert from "node:assert/strict";
import { phaseTargetFiles } from "../systemd/test_units.ts";
import { startPrivateSystemd } from "../systemd/harness.ts";
import type { CaseTable } from "./_case.ts";
import { type CaseOutcome, runCases } from "./_run.ts";
import { ALL_TABLES } from "./cases.ts";

/** Runs a table; returns one line per failed case. */
async function runTable(table: CaseTable): Promise<string[]> {
  // HOSTILE_CASE=<part of a name> runs only the matching cases (for debugging one).
  const only = Deno.env.get("HOSTILE_CASE");
  const cases = table.cases.filter((c) => !only || c.name.includes(only));
  const plain = cases.filter((c) => !c.systemd);
  const managed = cases.filter((c) => c.systemd);
  const outcomes: CaseOutcome[] = await runCases(plain, { parallel: 3 });
  if (managed.length > 0) {
    await using systemd = await startPrivateSystemd({ units: await phaseTargetFiles() });
    outcomes.push(...await runCases(managed, { parallel: 1, busAddress: systemd.busAddress }));
  }
  return outcomes.filter((outcome) => outcome.problems.length > 0).map((outcome) =>
    `${outcome.name}: ${outcome.problems.join("; ")}\n    stderr: ${
      outcome.stderr.trim().split("\n").slice(0, 3).join("\n    ")
    }\n    stdout: ${outcome.stdout.trim().split("\n").slice(0, 12).join("\n    ")}`
  );
}

Deno.test("hostile corpus: at least 200 cases over every kind of input, a traced sample of each", () => {
  const total = ALL_TABLES.reduce((sum, table) => sum + table.cases.length, 0);
  assert.ok(total >= 200, `${total} cases`);
  assert.deepEqual(
    ALL_TABLES.map((table) => table.category).sort(),
    ["cli", "config", "fdt", "records", "symlinks", "sysfs", "udev"],
  );
  for (const table of ALL_TABLES) {
    assert.ok(table.cases.some((c) => c.strace), `${table.category} has a traced case`);
    const names = table.cases.map((c) => c.name);
    assert.equal(new Set(names).size, names.length, `${table.category}: case names are unique`);
  }
});

Deno.test("hostile corpus: the README's table counts what the tables hold", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const total = ALL_TABLES.reduce((sum, table) => sum + table.cases.length, 0);
  assert.match(readme, new RegExp(`holds a corpus of ${total} malformed inputs`));
  for (const table of ALL_TABLES) {
    assert.match(readme, new RegExp(`\\| ${table.category} +\\| ${table.cases.length} +\\|`));
  }
});

for (const table of ALL_TABLES) {
  Deno.test(`hostile corpus: ${table.category} (${table.cases.length} cases)`, async () => {
    const failures = await runTable(table);
    assert.deepEqual(failures, [], `${failures.length} case(s) failed:\n${failures.join("\n")}`);
  });
}

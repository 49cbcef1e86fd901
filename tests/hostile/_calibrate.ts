// deno-lint-ignore-file no-console -- a developer tool that prints a table
/**
 * Prints what every case of the corpus gets (exit code, problems, the first lines
 * of standard error): the tool for writing and reviewing the tables.
 *
 *     deno run -A tests/hostile/_calibrate.ts [CATEGORY] [NAME-FILTER]
 *
 * @module
 */

import { ALL_TABLES } from "./cases.ts";
import { runCases } from "./_run.ts";
import { startPrivateSystemd } from "../systemd/harness.ts";
import { phaseTargetFiles } from "../systemd/test_units.ts";

const [category, filter] = Deno.args;
for (const table of ALL_TABLES) {
  if (category && table.category !== category) continue;
  const cases = table.cases.filter((c) => !filter || c.name.includes(filter));
  const plain = cases.filter((c) => !c.systemd);
  const managed = cases.filter((c) => c.systemd);
  const outcomes = await runCases(plain, { parallel: 3 });
  if (managed.length > 0) {
    await using systemd = await startPrivateSystemd({ units: await phaseTargetFiles() });
    outcomes.push(...await runCases(managed, { parallel: 1, busAddress: systemd.busAddress }));
  }
  for (const outcome of outcomes) {
    const mark = outcome.problems.length === 0 ? "ok  " : "FAIL";
    console.log(`${mark} [${table.category}] ${outcome.name}: exit ${outcome.code}`);
    for (const problem of outcome.problems) console.log(`       ! ${problem}`);
    if (outcome.problems.length > 0 || filter) {
      for (const line of outcome.stderr.trim().split("\n").slice(0, 4)) {
        console.log(`       | ${line.slice(0, 300)}`);
      }
    }
  }
}

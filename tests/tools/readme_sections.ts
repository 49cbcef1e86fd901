// deno-lint-ignore-file no-console -- a developer tool that prints progress, not part of the agent
/**
 * The README sections generated from the code (configuration reference, exit
 * codes, commands, journal events, JSON schemas, permission flags). `deno run -A
 * tests/tools/readme_sections.ts --write` refreshes them;
 * tests/tools/readme_test.ts fails when they are stale.
 *
 * @module
 */

import { permissionTable } from "../../agent/build/permissions.ts";
import { COMMANDS } from "../../agent/cli/commands.ts";
import { commandTable, exitCodeTable } from "../../agent/cli/help.ts";
import { schemaTable } from "../../agent/cli/schemas/mod.ts";
import { renderReference } from "../../agent/config/mod.ts";
import { eventTable } from "../../agent/log/mod.ts";

/** Generated sections by marker name. */
export const SECTIONS: Readonly<Record<string, () => string>> = {
  "config-reference": renderReference,
  "exit-codes": exitCodeTable,
  commands: () => commandTable(COMMANDS),
  "journal-events": eventTable,
  "json-schemas": schemaTable,
  "permission-flags": permissionTable,
};

/** Replaces every generated section of `readme` with its current content. */
export function refresh(readme: string): string {
  let result = readme;
  for (const [name, render] of Object.entries(SECTIONS)) {
    const pattern = new RegExp(
      `(<!-- BEGIN ${name} -->\\n)[\\s\\S]*?(<!-- END ${name} -->)`,
    );
    if (!pattern.test(result)) throw new Error(`README has no section markers for "${name}"`);
    result = result.replace(pattern, (_, begin, end) => `${begin}\n${render()}\n${end}`);
  }
  return result;
}

/**
 * Markdown tables as `deno fmt` may align them: cells trimmed, rules shortened, so a
 * generated table and its formatted copy compare equal.
 */
export function normalizeTables(markdown: string): string {
  return markdown.split("\n").map((line) => {
    if (!line.startsWith("|")) return line;
    return line.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/^-{3,}$/, "---")).join("|");
  }).join("\n");
}

if (import.meta.main) {
  const path = new URL("../../README.md", import.meta.url);
  const current = await Deno.readTextFile(path);
  const next = refresh(current);
  const same = normalizeTables(next) === normalizeTables(current);
  if (Deno.args.includes("--write")) {
    await Deno.writeTextFile(path, next);
    console.log(same ? "README is up to date" : "README sections refreshed (run deno fmt)");
  } else {
    console.log(same ? "README is up to date" : "README sections are stale");
    Deno.exit(same ? 0 : 1);
  }
}

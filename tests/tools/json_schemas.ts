// deno-lint-ignore-file no-console -- a developer tool that prints progress, not part of the agent
/**
 * The JSON Schema files of the `--json` documents (agent/cli/schemas/*.schema.json),
 * generated from agent/cli/schemas/. `deno run -A tests/tools/json_schemas.ts
 * --write` refreshes them; tests/tools/json_schemas_test.ts fails when they are stale.
 *
 * @module
 */

import { allSchemas, schemaFileName } from "../../agent/cli/schemas/mod.ts";

/** Where the files are. */
export const SCHEMA_DIR = new URL("../../agent/cli/schemas/", import.meta.url);

/** File name → contents, as they should be. */
export function schemaFiles(): Record<string, string> {
  return Object.fromEntries(
    allSchemas().map((schema) => [
      schemaFileName(schema),
      JSON.stringify(schema.schema, null, 2) + "\n",
    ]),
  );
}

if (import.meta.main) {
  const write = Deno.args.includes("--write");
  let stale = 0;
  for (const [name, text] of Object.entries(schemaFiles())) {
    const path = new URL(name, SCHEMA_DIR);
    let current = "";
    try {
      current = await Deno.readTextFile(path);
    } catch {
      // new
    }
    if (current === text) continue;
    stale++;
    if (write) await Deno.writeTextFile(path, text);
    console.log(`${write ? "wrote" : "stale"}: agent/cli/schemas/${name}`);
  }
  if (!write && stale > 0) Deno.exit(1);
}

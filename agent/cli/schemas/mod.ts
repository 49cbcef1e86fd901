/**
 * The JSON Schemas of the agent's `--json` documents, by name. The files beside
 * this module (`<name>.v<version>.schema.json`) are generated from these
 * (`deno run -A tests/tools/json_schemas.ts --write`; a test checks they are
 * current) and `liveupdate-agent schema NAME` prints them.
 *
 * @module
 */

import { configDocumentSchema } from "./config.ts";
import { DOCUMENT_SCHEMAS, type DocumentSchema } from "./documents.ts";

export type { JsonSchema } from "./_common.ts";
export type { DocumentSchema } from "./documents.ts";

/** Every document schema, `config` last. */
export function allSchemas(): DocumentSchema[] {
  return [
    ...DOCUMENT_SCHEMAS,
    { name: "config", version: 1, commands: ["config --json"], schema: configDocumentSchema() },
  ];
}

/** The file name of a schema (`status.v1.schema.json`). */
export function schemaFileName(schema: DocumentSchema): string {
  return `${schema.name}.v${schema.version}.schema.json`;
}

/** The schema named `name` (throws for an unknown name). */
export function schemaNamed(name: string): DocumentSchema {
  const schema = allSchemas().find((candidate) => candidate.name === name);
  if (!schema) throw new RangeError(`No schema named "${name}"`);
  return schema;
}

/** The schemas as a Markdown table (document, version, printed by, file), for the README. */
export function schemaTable(): string {
  const rows = allSchemas().map((schema) =>
    `| \`${schema.name}\` | ${schema.version} | ${
      schema.commands.map((c) => `\`${c}\``).join(", ")
    } | [\`${schemaFileName(schema)}\`](agent/cli/schemas/${schemaFileName(schema)}) |`
  );
  return ["| document | version | printed by | schema |", "| --- | --- | --- | --- |", ...rows]
    .join("\n") + "\n";
}

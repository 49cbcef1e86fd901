/**
 * The schema of `config --json`, derived from the configuration schema
 * (agent/config/schema.ts) so it lists every key: `{ version, sources, origins,
 * config }`, values written as in TOML files (durations as text such as "2min").
 *
 * @module
 */

import { SCHEMA, type Shape } from "../../config/mod.ts";
import { array, DRAFT, type JsonSchema, map, object, schemaId, string } from "./_common.ts";

function valueSchema(value: unknown): JsonSchema {
  if (typeof value === "string") return { type: "string" };
  if (typeof value === "boolean") return { type: "boolean" };
  if (typeof value === "number") return { type: "integer" };
  if (Array.isArray(value)) return array(string);
  return map({ type: ["string", "integer"] });
}

function sectionSchema(shape: Shape, doc?: string): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [name, spec] of Object.entries(shape)) {
    properties[name] = spec.kind === "section"
      ? sectionSchema(spec.shape, spec.doc)
      : { description: spec.doc, ...valueSchema(spec.toToml(spec.default)) };
  }
  return object(properties, doc ? { description: doc } : {});
}

/** The schema of `config --json`. */
export function configDocumentSchema(): JsonSchema {
  return {
    $schema: DRAFT,
    $id: schemaId("config", 1),
    title: "liveupdate-agent config --json",
    ...object({
      version: { const: 1 },
      sources: { description: "The drop-in files read, in order.", ...array(string) },
      origins: {
        description: "The file that set each key not at its default (dotted key → file).",
        ...map(string),
      },
      config: sectionSchema(SCHEMA),
    }),
  };
}

/**
 * Checks a `--json` document against its published schema (agent/cli/schemas/).
 *
 * @module
 */

import { schemaNamed } from "../../agent/cli/schemas/mod.ts";
import { assertValid } from "./json_schema.ts";

/**
 * Throws, listing every problem, unless `document` (parsed JSON, or the text a
 * command printed) matches the schema `name`. Returns the parsed document.
 */
// deno-lint-ignore no-explicit-any -- like JSON.parse: the test reads the fields it checks
export function assertDocument<T = any>(name: string, document: unknown): T {
  const value = typeof document === "string" ? JSON.parse(document) : document;
  assertValid(schemaNamed(name).schema, value, `"${name}" document`);
  return value as T;
}

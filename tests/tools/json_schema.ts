/**
 * A small JSON Schema (draft 2020-12) validator for the subset the agent's
 * schemas (agent/cli/schemas/) use, so tests can check every `--json` document
 * against its schema without a dependency:
 *
 * `type` (a name or a list), `enum`, `const`, `properties`, `required`,
 * `additionalProperties` (false or a schema), `items`, `minItems`, `anyOf`,
 * `oneOf`, `$ref` to `#/$defs/NAME`, `minimum`, `maximum`, `minLength`,
 * `pattern`; annotations (`$schema`, `$id`, `$defs`, `title`, `description`,
 * `$comment`, `examples`, `default`) are accepted and ignored.
 *
 * A keyword outside this subset is an error in the schema, never silently
 * ignored: a schema cannot promise more than this validator checks.
 *
 * @module
 */

/** A JSON Schema (an object; `true`/`false` schemas are not used). */
export type Schema = { [keyword: string]: unknown };

/** The schema itself is not in the supported subset or is malformed. */
export class SchemaError extends Error {
  override name = "SchemaError";
}

const ANNOTATIONS = new Set([
  "$schema",
  "$id",
  "$defs",
  "title",
  "description",
  "$comment",
  "examples",
  "default",
]);
const KEYWORDS = new Set([
  "type",
  "enum",
  "const",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "anyOf",
  "oneOf",
  "$ref",
  "minimum",
  "maximum",
  "minLength",
  "pattern",
]);
const TYPES = new Set(["null", "boolean", "object", "array", "number", "integer", "string"]);

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function matchesType(value: unknown, type: string): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "boolean":
      return typeof value === "boolean";
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    case "array":
      return Array.isArray(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "string":
      return typeof value === "string";
  }
  throw new SchemaError(`Unknown type "${type}"`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function pointer(path: string, key: string | number): string {
  return `${path}/${String(key).replaceAll("~", "~0").replaceAll("/", "~1")}`;
}

/** Validates `value` against `schema`; returns the problems ("/path: message"), none if valid. */
export function validate(schema: Schema, value: unknown): string[] {
  const root = schema;
  let problems: string[] = [];

  /** Runs `check` into a fresh list of problems and returns it. */
  const collect = (node: unknown, data: unknown, path: string): string[] => {
    const outer = problems;
    problems = [];
    try {
      check(node, data, path);
      return problems;
    } finally {
      problems = outer;
    }
  };

  const check = (node: unknown, data: unknown, path: string): void => {
    if (!isObject(node)) throw new SchemaError(`Schema at ${path || "/"} is not an object`);
    for (const keyword of Object.keys(node)) {
      if (!KEYWORDS.has(keyword) && !ANNOTATIONS.has(keyword)) {
        throw new SchemaError(`Unsupported keyword "${keyword}" (validating ${path || "/"})`);
      }
    }
    if ("$ref" in node) {
      const ref = node.$ref;
      const match = typeof ref === "string" ? /^#\/\$defs\/([A-Za-z0-9_-]+)$/.exec(ref) : null;
      const defs = root.$defs as Record<string, unknown> | undefined;
      if (!match || !defs || !(match[1]! in defs)) {
        throw new SchemaError(`Unresolvable $ref ${JSON.stringify(ref)}`);
      }
      check(defs[match[1]!], data, path);
    }
    if ("type" in node) {
      const types = Array.isArray(node.type) ? node.type : [node.type];
      for (const type of types) {
        if (typeof type !== "string" || !TYPES.has(type)) {
          throw new SchemaError(`Bad type ${JSON.stringify(type)}`);
        }
      }
      if (!types.some((type) => matchesType(data, type as string))) {
        problems.push(`${path || "/"}: is ${typeOf(data)}, expected ${types.join(" or ")}`);
        return;
      }
    }
    if ("const" in node && !equal(node.const, data)) {
      problems.push(
        `${path || "/"}: is ${JSON.stringify(data)}, expected ${JSON.stringify(node.const)}`,
      );
    }
    if ("enum" in node) {
      if (!Array.isArray(node.enum)) throw new SchemaError("enum is not a list");
      if (!node.enum.some((option) => equal(option, data))) {
        problems.push(
          `${path || "/"}: is ${JSON.stringify(data)}, expected one of ${
            JSON.stringify(node.enum)
          }`,
        );
      }
    }
    if (typeof data === "number") {
      if (typeof node.minimum === "number" && data < node.minimum) {
        problems.push(`${path || "/"}: ${data} is below ${node.minimum}`);
      }
      if (typeof node.maximum === "number" && data > node.maximum) {
        problems.push(`${path || "/"}: ${data} is above ${node.maximum}`);
      }
    }
    if (typeof data === "string") {
      if (typeof node.minLength === "number" && data.length < node.minLength) {
        problems.push(`${path || "/"}: is shorter than ${node.minLength}`);
      }
      if (typeof node.pattern === "string" && !new RegExp(node.pattern, "u").test(data)) {
        problems.push(`${path || "/"}: ${JSON.stringify(data)} does not match /${node.pattern}/`);
      }
    }
    if (Array.isArray(data)) {
      if (typeof node.minItems === "number" && data.length < node.minItems) {
        problems.push(`${path || "/"}: has fewer than ${node.minItems} items`);
      }
      if ("items" in node) data.forEach((item, i) => check(node.items, item, pointer(path, i)));
    }
    if (isObject(data)) {
      const properties = (node.properties ?? {}) as Record<string, unknown>;
      if (!isObject(properties)) throw new SchemaError("properties is not an object");
      if ("required" in node) {
        if (!Array.isArray(node.required)) throw new SchemaError("required is not a list");
        for (const key of node.required as string[]) {
          if (!(key in data)) problems.push(`${pointer(path, key)}: is missing`);
        }
      }
      for (const [key, item] of Object.entries(data)) {
        if (key in properties) check(properties[key], item, pointer(path, key));
        else if (node.additionalProperties === false) {
          problems.push(`${pointer(path, key)}: is not allowed (not in the schema)`);
        } else if (isObject(node.additionalProperties)) {
          check(node.additionalProperties, item, pointer(path, key));
        }
      }
    }
    for (const combinator of ["anyOf", "oneOf"] as const) {
      if (!(combinator in node)) continue;
      const options = node[combinator];
      if (!Array.isArray(options)) throw new SchemaError(`${combinator} is not a list`);
      const results = options.map((option) => collect(option, data, path));
      const passing = results.filter((result) => result.length === 0).length;
      if (combinator === "anyOf" && passing === 0) {
        problems.push(
          `${path || "/"}: matches none of anyOf (${results.map((r) => r[0]).join("; ")})`,
        );
      }
      if (combinator === "oneOf" && passing !== 1) {
        problems.push(`${path || "/"}: matches ${passing} of oneOf, expected exactly 1`);
      }
    }
  };

  return collect(schema, value, "");
}

/** Throws (with every problem) unless `value` is valid against `schema`. */
export function assertValid(schema: Schema, value: unknown, what = "document"): void {
  const problems = validate(schema, value);
  if (problems.length > 0) {
    throw new Error(`The ${what} does not match its schema:\n  ${problems.join("\n  ")}`);
  }
}

/**
 * Walks every subschema of `schema` (properties, items, combinators, `$defs`) and
 * throws {@link SchemaError} for a keyword outside the subset or a `$ref` that does
 * not resolve — also in branches no document reaches.
 */
export function checkSchema(schema: Schema): void {
  const defs = (schema.$defs ?? {}) as Record<string, unknown>;
  const walk = (node: unknown, where: string): void => {
    if (!isObject(node)) throw new SchemaError(`Schema at ${where} is not an object`);
    for (const keyword of Object.keys(node)) {
      if (!KEYWORDS.has(keyword) && !ANNOTATIONS.has(keyword)) {
        throw new SchemaError(`Unsupported keyword "${keyword}" at ${where}`);
      }
    }
    if (typeof node.$ref === "string") {
      const name = /^#\/\$defs\/([A-Za-z0-9_-]+)$/.exec(node.$ref)?.[1];
      if (!name || !(name in defs)) throw new SchemaError(`Unresolvable $ref at ${where}`);
    }
    if (isObject(node.properties)) {
      for (const [key, sub] of Object.entries(node.properties)) {
        walk(sub, `${where}/properties/${key}`);
      }
    }
    if (isObject(node.additionalProperties)) {
      walk(node.additionalProperties, `${where}/additionalProperties`);
    }
    if ("items" in node) walk(node.items, `${where}/items`);
    for (const combinator of ["anyOf", "oneOf"]) {
      const options = node[combinator];
      if (Array.isArray(options)) options.forEach((o, i) => walk(o, `${where}/${combinator}/${i}`));
    }
  };
  walk(schema, "#");
  for (const [name, sub] of Object.entries(defs)) walk(sub, `#/$defs/${name}`);
}

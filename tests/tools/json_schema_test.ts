import assert from "node:assert/strict";
import { type Schema, SchemaError, validate } from "./json_schema.ts";

const schema: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "https://example/test.schema.json",
  type: "object",
  required: ["version", "kind", "items"],
  additionalProperties: false,
  properties: {
    version: { const: 1 },
    kind: { enum: ["a", "b"] },
    name: { type: ["string", "null"], pattern: "^[a-z]+$", minLength: 2 },
    count: { type: "integer", minimum: 0, maximum: 10 },
    items: { type: "array", minItems: 1, items: { $ref: "#/$defs/item" } },
    either: { oneOf: [{ type: "string" }, { type: "integer" }] },
    any: { anyOf: [{ type: "boolean" }, { const: "x" }] },
    map: { type: "object", additionalProperties: { type: "number" } },
  },
  $defs: {
    item: {
      type: "object",
      required: ["id"],
      properties: { id: { type: "string" } },
      additionalProperties: false,
    },
  },
};

Deno.test("json_schema: a valid document has no problems", () => {
  assert.deepEqual(
    validate(schema, {
      version: 1,
      kind: "a",
      name: null,
      count: 3,
      items: [{ id: "x" }],
      either: 5,
      any: "x",
      map: { a: 1.5 },
    }),
    [],
  );
});

Deno.test("json_schema: every kind of problem is reported with its path", () => {
  const problems = validate(schema, {
    version: 2,
    kind: "c",
    name: "A",
    count: 11,
    items: [{ id: 1, extra: true }],
    either: 1.5,
    any: "y",
    map: { a: "1" },
    surprise: 1,
  });
  const text = problems.join("\n");
  for (
    const expected of [
      /^\/version: is 2, expected 1$/m,
      /^\/kind: is "c", expected one of/m,
      /^\/name: "A" does not match/m,
      /^\/name: is shorter than 2$/m,
      /^\/count: 11 is above 10$/m,
      /^\/items\/0\/id: is number, expected string$/m,
      /^\/items\/0\/extra: is not allowed/m,
      /^\/either: matches 0 of oneOf/m,
      /^\/any: matches none of anyOf/m,
      /^\/map\/a: is string, expected number$/m,
      /^\/surprise: is not allowed/m,
    ]
  ) assert.match(text, expected);
  assert.match(validate(schema, { version: 1, kind: "a", items: [] }).join("\n"), /fewer than 1/);
  assert.match(validate(schema, { version: 1 }).join("\n"), /^\/kind: is missing$/m);
  assert.match(validate(schema, []).join("\n"), /^\/: is array, expected object$/m);
});

Deno.test("json_schema: keywords outside the subset and bad refs are schema errors", () => {
  assert.throws(() => validate({ type: "string", format: "date-time" }, "x"), SchemaError);
  assert.throws(() => validate({ $ref: "#/$defs/missing" }, 1), SchemaError);
  assert.throws(() => validate({ type: "text" }, 1), SchemaError);
});

import assert from "node:assert/strict";
import { allSchemas } from "../../agent/cli/schemas/mod.ts";
import { createTestHost } from "../../agent/host/mod.ts";
import { runCli } from "../../agent/cli/mod.ts";
import { checkSchema } from "./json_schema.ts";
import { SCHEMA_DIR, schemaFiles } from "./json_schemas.ts";

Deno.test("the JSON Schema files are current", async () => {
  for (const [name, text] of Object.entries(schemaFiles())) {
    assert.equal(
      await Deno.readTextFile(new URL(name, SCHEMA_DIR)),
      text,
      `${name} is stale: run deno run -A tests/tools/json_schemas.ts --write`,
    );
  }
  const shipped = [...Deno.readDirSync(SCHEMA_DIR)].map((e) => e.name)
    .filter((name) => name.endsWith(".schema.json")).sort();
  assert.deepEqual(shipped, Object.keys(schemaFiles()).sort(), "no stray schema files");
});

Deno.test("every schema uses only what the validator checks, and versions match $id", () => {
  for (const { name, version, schema } of allSchemas()) {
    checkSchema(schema);
    assert.equal(schema.$id, `urn:liveupdate-agent:schema:${name}:${version}`);
    assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
  }
});

Deno.test("liveupdate-agent schema lists the schemas and prints one", async () => {
  const list = createTestHost();
  assert.equal(await runCli(["schema", "--config-root=/nonexistent"], list), 0);
  for (const { name } of allSchemas()) {
    assert.match(list.stdout.text(), new RegExp(`^${name} `, "m"));
  }
  const one = createTestHost();
  assert.equal(await runCli(["schema", "status", "--config-root=/nonexistent"], one), 0);
  assert.equal(JSON.parse(one.stdout.text()).$id, "urn:liveupdate-agent:schema:status:1");
  const bad = createTestHost();
  assert.equal(await runCli(["schema", "nope", "--config-root=/nonexistent"], bad), 2);
  assert.match(bad.stderr.text(), /Unknown schema 'nope'; known: status, /);
});

/**
 * `liveupdate-agent schema [NAME]`: the JSON Schemas of the `--json` documents,
 * for scripts and fleet tools that read them.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { Command } from "./command.ts";
import { allSchemas, schemaFileName } from "./schemas/mod.ts";

/** `liveupdate-agent schema [NAME]`. */
export const schemaCommand: Command = {
  name: "schema",
  summary: "Print the JSON Schema of a --json document, or list them.",
  description: [
    "Without NAME: every document, its schema version and the commands that print it.",
    "With NAME (status, devices, check, history, attempt, resolution, wait, fleet-status,",
    "fleet-release, config): that document's JSON Schema (draft 2020-12). A document's",
    "'version' field (an attempt record's 'schema') names the schema version it follows.",
  ].join("\n"),
  options: {},
  positionals: ["NAME"],
  run(context, args) {
    const schemas = allSchemas();
    const [name] = args.positionals;
    const { stdout } = context.host;
    if (name === undefined) {
      const width = Math.max(...schemas.map((s) => s.name.length));
      const lines = schemas.map((s) =>
        `${s.name.padEnd(width)}  v${s.version}  ${schemaFileName(s).padEnd(30)}  ` +
        s.commands.join(", ")
      );
      stdout.write(lines.join("\n") + "\n");
      return Promise.resolve(ExitCode.Success);
    }
    const schema = schemas.find((s) => s.name === name);
    if (!schema) {
      throw new UsageError(
        `Unknown schema '${name}'; known: ${schemas.map((s) => s.name).join(", ")}.`,
      );
    }
    stdout.write(JSON.stringify(schema.schema, null, 2) + "\n");
    return Promise.resolve(ExitCode.Success);
  },
};

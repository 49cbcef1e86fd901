/**
 * `liveupdate-agent config`: the effective configuration.
 *
 * @module
 */

import { configJson, renderReference, renderToml } from "../config/mod.ts";
import { ExitCode } from "../exit_codes.ts";
import type { Command } from "./command.ts";

/** Prints the merged configuration (TOML, or JSON with `--json`). */
export const configCommand: Command = {
  name: "config",
  summary: "Print the effective configuration, merged from every drop-in.",
  description: [
    "Reads /usr/lib/liveupdate/config.d, /etc/liveupdate/config.d and",
    "/run/liveupdate/config.d (in that order; within a directory in lexical order),",
    "validates every file and prints the result. Settings that are not at their default",
    "name the file that set them. A file in a later directory replaces a file of the same",
    "name in an earlier one; an empty file or a symlink to /dev/null masks it.",
  ].join("\n"),
  options: {
    json: { type: "boolean", description: "Print JSON: { version, sources, origins, config }." },
    reference: {
      type: "boolean",
      description: "Print the reference of every key (Markdown), not the configuration.",
    },
  },
  run(context, args) {
    const { stdout } = context.host;
    if (args.values.reference) stdout.write(renderReference());
    else if (args.values.json) {
      stdout.write(JSON.stringify(configJson(context.loaded), null, 2) + "\n");
    } else stdout.write(renderToml(context.loaded));
    return Promise.resolve(ExitCode.Success);
  },
};

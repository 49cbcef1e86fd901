// deno-lint-ignore-file no-console -- a build tool that prints progress, not part of the agent
/**
 * `deno task compile`: builds the single `liveupdate-agent` binary with exactly the
 * agent's permission flags. Refuses, with a clear message, when the compile
 * runtime (denort) cannot be had, instead of leaving a broken file behind.
 *
 * Usage: deno task compile [--output=PATH] [--net-host=HOST:PORT ...]
 *
 * `--net-host` pins the hosts the binary may connect to (the fleet's etcd members
 * or FleetLock server); without it the binary may connect to any host (see
 * agent/build/permissions.ts for the trade-off).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { permissionFlags } from "./permissions.ts";
import { RUNTIME_FLAGS } from "./runtime_flags.ts";

const root = new URL("../../", import.meta.url).pathname;

/**
 * The `deno` arguments that compile `main` into `output`: exactly the agent's
 * permission flags ({@link PERMISSION_FLAGS}) and its V8 flags ({@link RUNTIME_FLAGS}),
 * baked into the binary.
 */
export function compileArgs(
  output: string,
  main = `${root}agent/main.ts`,
  netHosts?: readonly string[],
): string[] {
  const flags = permissionFlags(netHosts ? { netHosts } : {});
  return ["compile", "--frozen", ...flags, ...RUNTIME_FLAGS, "--output", output, main];
}

async function isFullDeno(binary: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(binary, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return new TextDecoder().decode(out.stdout).startsWith("deno ");
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      output: { type: "string", default: `${root}.build/liveupdate-agent` },
      "net-host": { type: "string", multiple: true },
    },
    strict: true,
  });
  const output = values.output!;
  const denort = Deno.env.get("DENORT_BIN");
  if (denort && await isFullDeno(denort)) {
    console.error(
      `compile: DENORT_BIN="${denort}" is the full deno CLI, not the denort runtime. A binary ` +
        "built on it ignores its payload. Unset DENORT_BIN or point it at denort.",
    );
    Deno.exit(1);
  }
  await Deno.mkdir(output.slice(0, output.lastIndexOf("/")) || ".", { recursive: true });
  const result = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(output, `${root}agent/main.ts`, values["net-host"]),
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  if (result.code !== 0) {
    await Deno.remove(output).catch(() => {});
    if (/denort|dl\.deno\.land|base binary/i.test(stderr)) {
      console.error(
        "compile: the compile runtime (denort) is not available: deno compile downloads it from " +
          "dl.deno.land, which this machine cannot reach. Build the binary with the Containerfile " +
          "on a machine with network access, or set DENORT_BIN to a denort binary. No binary was written.",
      );
    } else {
      console.error(stderr.trimEnd());
      console.error(`compile: deno compile failed (exit ${result.code}); no binary was written.`);
    }
    Deno.exit(1);
  }
  console.log(`compile: wrote ${output}`);
}

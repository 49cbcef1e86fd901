/**
 * The agent's phase targets (`liveupdate-<phase>.target`) as shipped, for the
 * rehearsal's private manager: from the source checkout's `units/` when the agent
 * runs from source, else from where an OS image installs them.
 *
 * @module
 */

import { PHASES } from "../config/mod.ts";
import { AgentError } from "../errors.ts";

/** Where an OS image installs the units. */
export const IMAGE_UNIT_DIR = "/usr/lib/systemd/system";

function sourceUnitDir(): string | undefined {
  const here = new URL(import.meta.url);
  if (Deno.build.standalone || here.protocol !== "file:") return undefined;
  return new URL("../../units/", here).pathname;
}

/**
 * The phase targets (file name → contents), read from `dir`, or from the source
 * checkout's `units/` and then {@link IMAGE_UNIT_DIR}. Needs `--allow-read` there.
 */
export async function shippedPhaseTargets(dir?: string): Promise<Record<string, string>> {
  const dirs = dir ? [dir] : [sourceUnitDir(), IMAGE_UNIT_DIR].filter((d) => d !== undefined);
  const problems: string[] = [];
  for (const candidate of dirs) {
    try {
      const files: Record<string, string> = {};
      for (const phase of PHASES) {
        const name = `liveupdate-${phase}.target`;
        files[name] = await Deno.readTextFile(`${candidate.replace(/\/$/, "")}/${name}`);
      }
      return files;
    } catch (error) {
      problems.push(`${candidate}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  throw new AgentError(
    `The agent's phase targets (liveupdate-<phase>.target) were not found: ${problems.join("; ")}.`,
  );
}

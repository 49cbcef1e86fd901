// deno-lint-ignore-file no-console -- a developer tool that prints progress, not part of the agent
/**
 * The README's test command: installs what the selected tiers need, builds what
 * they test against, runs each tier with `deno test`, and ends with one plain line
 * `N passed, N failed` summed over every tier.
 *
 * Usage: deno task test [--tier=unit,integration,...] [--filter=TEXT]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Tier, TIERS } from "./tiers.ts";

const root = new URL("../../", import.meta.url).pathname;

interface Totals {
  passed: number;
  failed: number;
}

/** Reads `deno test`'s summary line ("ok | 12 passed (3 steps) | 0 failed (2s)"). */
export function parseSummary(output: string): Totals | undefined {
  const lines = output.split("\n").filter((line) => /\d+ passed.*\d+ failed/.test(line));
  const last = lines.at(-1);
  if (!last) return undefined;
  // deno-lint-ignore no-control-regex
  const plain = last.replace(/\x1b\[[0-9;]*m/g, "");
  const passed = /(\d+) passed/.exec(plain);
  const failed = /(\d+) failed/.exec(plain);
  if (!passed || !failed) return undefined;
  return { passed: Number(passed[1]), failed: Number(failed[1]) };
}

async function run(command: string, args: string[], capture: boolean): Promise<[number, string]> {
  const child = new Deno.Command(command, {
    args,
    cwd: root,
    stdout: capture ? "piped" : "inherit",
    stderr: capture ? "piped" : "inherit",
  }).spawn();
  if (!capture) return [(await child.status).code, ""];
  let text = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      await sink.write(chunk);
    }
  };
  await Promise.all([pump(child.stdout, Deno.stdout), pump(child.stderr, Deno.stderr)]);
  return [(await child.status).code, text];
}

async function runTier(tier: Tier, filter: string | undefined): Promise<Totals> {
  console.log(`\n=== tier ${tier.name}: ${tier.description}`);
  const [setupCode] = await run("bash", ["tests/tools/setup_host.sh", ...tier.packages], false);
  if (setupCode !== 0) {
    console.log(`=== tier ${tier.name}: installing its packages failed (exit ${setupCode})`);
    return { passed: 0, failed: 1 };
  }
  for (const step of tier.prepare) {
    const [code] = await run(step[0]!, step.slice(1), false);
    if (code !== 0) {
      console.log(`=== tier ${tier.name}: '${step.join(" ")}' failed (exit ${code})`);
      return { passed: 0, failed: 1 };
    }
  }
  const args = ["test", ...tier.flags, ...(filter ? [`--filter=${filter}`] : []), ...tier.paths];
  const [code, output] = await run(Deno.execPath(), args, true);
  const totals = parseSummary(output);
  if (!totals) {
    console.log(`=== tier ${tier.name}: deno test printed no summary (exit ${code})`);
    return { passed: 0, failed: 1 };
  }
  if (code !== 0 && totals.failed === 0) totals.failed = 1;
  return totals;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { tier: { type: "string" }, filter: { type: "string" } },
    strict: true,
  });
  const names = values.tier?.split(",") ?? TIERS.map((tier) => tier.name);
  const unknown = names.filter((name) => !TIERS.some((tier) => tier.name === name));
  if (unknown.length > 0) {
    console.error(`Unknown tier '${unknown[0]}'; known: ${TIERS.map((t) => t.name).join(", ")}`);
    Deno.exit(2);
  }
  const totals: Totals = { passed: 0, failed: 0 };
  const lines: string[] = [];
  for (const tier of TIERS.filter((tier) => names.includes(tier.name))) {
    const result = await runTier(tier, values.filter);
    totals.passed += result.passed;
    totals.failed += result.failed;
    lines.push(`  ${tier.name.padEnd(12)} ${result.passed} passed, ${result.failed} failed`);
  }
  console.log(["", "=== summary", ...lines].join("\n"));
  console.log(`${totals.passed} passed, ${totals.failed} failed`);
  Deno.exit(totals.failed > 0 ? 1 : 0);
}

/**
 * Running one hostile case: a fresh host, the planted input, the real CLI as a
 * subprocess (`deno run agent/main.ts …`, optionally under strace), and every
 * check the corpus makes:
 *
 * - the exit code is the documented one, and standard error says what it must;
 * - no crash: no "Uncaught", no V8 stack frame ("    at …"), no "Unexpected
 *   internal error" (the CLI's last resort for an error it did not expect);
 * - no hang (a case that does not end within the timeout fails);
 * - nothing outside the allowed paths changed in the host (a snapshot of every
 *   file before and after), and the stand-in secret never shows in the output;
 * - under strace: every file the agent process created, opened for writing,
 *   renamed, removed, truncated or chmod-ed is an allowed one
 *   ({@link writeAllowed}, plus the Deno runtime's own: see {@link runtimeWrite}).
 *
 * @module
 */

import type { HostileCase } from "./_case.ts";
import { type HostileHost, makeHost, snapshot, writeAllowed } from "./_host.ts";
import { type TracedWrite, traceWrites } from "./_strace.ts";

const MAIN = new URL("../../agent/main.ts", import.meta.url).pathname;
const DENO_DIR = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
const decoder = new TextDecoder();

/**
 * Writes the Deno runtime makes itself, not the agent: its module and code caches
 * in DENO_DIR (sqlite files, compiled modules; the compiled binary has none), and
 * /dev/null (standard streams of a child).
 */
export function runtimeWrite(path: string): boolean {
  return path === "/dev/null" || path === DENO_DIR || path.startsWith(`${DENO_DIR}/`);
}

/** What one case came to. */
export interface CaseOutcome {
  name: string;
  code: number;
  stdout: string;
  stderr: string;
  /** What is wrong; empty when the case passed. */
  problems: string[];
  /** The agent's traced writes (strace cases). */
  writes?: TracedWrite[];
}

/** Options of {@link runCase}. */
export interface RunCaseOptions {
  /** The shared private manager's D-Bus address, for `systemd` cases. */
  busAddress?: string;
  timeoutMs?: number;
}

const CRASH = [
  [/Uncaught/, "an uncaught exception"],
  [/^\s+at \S.*[:)]\d*\)?$/m, "a V8 stack frame"],
  [/Unexpected internal error/, "an unexpected internal error"],
  [/panicked at|RUST_BACKTRACE/, "a Deno runtime panic"],
] as const;

/** The agent's writes outside the allowed paths, from a trace. */
export function forbiddenWrites(host: HostileHost, writes: readonly TracedWrite[]): string[] {
  return writes
    .filter((write) => write.program === Deno.execPath())
    .flatMap((write) =>
      write.paths
        .filter((path) => !writeAllowed(host, path) && !runtimeWrite(path))
        .map((path) => `${write.call} ${path} (${write.line.slice(0, 200)})`)
    );
}

/** Runs `hostile` against a fresh host; never throws for the case's own failure. */
export async function runCase(
  hostile: HostileCase,
  options: RunCaseOptions = {},
): Promise<CaseOutcome> {
  const host = await makeHost();
  const problems: string[] = [];
  try {
    if (hostile.systemd) {
      if (!options.busAddress) throw new Error(`${hostile.name} needs the private manager`);
      host.configText = host.configText.replace(
        /^bus_address = .*$/m,
        `bus_address = "${options.busAddress}"`,
      );
      await Deno.writeTextFile(host.configFile, host.configText);
    }
    await hostile.setup?.(host);
    const before = await snapshot(host.dir);
    const argv = typeof hostile.argv === "function" ? hostile.argv(host) : hostile.argv;
    const args = [
      "run",
      "-A",
      "--cached-only",
      "--quiet",
      MAIN,
      ...argv,
      ...(hostile.configRoot === false ? [] : [`--config-root=${host.configRoot}`]),
    ];
    const env = { NO_COLOR: "1" };
    const timeoutMs = options.timeoutMs ?? 60_000;
    let code: number;
    let stdout: string;
    let stderr: string;
    let writes: TracedWrite[] | undefined;
    try {
      if (hostile.strace) {
        const traced = await traceWrites(Deno.execPath(), args, { env, timeoutMs, cwd: host.dir });
        ({ code, stdout, stderr, writes } = traced);
      } else {
        const output = await new Deno.Command(Deno.execPath(), {
          args,
          env,
          cwd: host.dir,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(timeoutMs),
        }).output();
        code = output.code;
        stdout = decoder.decode(output.stdout);
        stderr = decoder.decode(output.stderr);
      }
    } catch (error) {
      return {
        name: hostile.name,
        code: -1,
        stdout: "",
        stderr: "",
        problems: [`did not end within ${timeoutMs} ms or could not run: ${error}`],
      };
    }
    if (code !== hostile.code) problems.push(`exit ${code}, expected ${hostile.code}`);
    if (hostile.stderr && !hostile.stderr.test(stderr)) {
      problems.push(`stderr does not match ${hostile.stderr}`);
    }
    if (hostile.stdout && !hostile.stdout.test(stdout)) {
      problems.push(`stdout does not match ${hostile.stdout}`);
    }
    for (const [pattern, what] of CRASH) {
      if (pattern.test(stderr) || pattern.test(stdout)) problems.push(`crash: ${what}`);
    }
    if (/not-a-real-hash/.test(stdout + stderr)) problems.push("the secret shows in the output");
    if (code !== 0 && stderr.trim() === "" && !hostile.quiet) {
      problems.push("failed without a word on stderr");
    }
    const after = await snapshot(host.dir);
    for (const path of new Set([...before.keys(), ...after.keys()])) {
      if (before.get(path) === after.get(path) || writeAllowed(host, path)) continue;
      problems.push(
        `changed outside the allowed paths: ${path} (${before.get(path) ?? "absent"} → ${
          after.get(path) ?? "absent"
        })`,
      );
    }
    if (writes) {
      for (const write of forbiddenWrites(host, writes)) problems.push(`traced write: ${write}`);
    }
    await hostile.after?.(host);
    return { name: hostile.name, code, stdout, stderr, problems, ...(writes ? { writes } : {}) };
  } catch (error) {
    problems.push(`the case itself failed: ${error instanceof Error ? error.stack : error}`);
    return { name: hostile.name, code: -1, stdout: "", stderr: "", problems };
  } finally {
    await Deno.remove(host.dir, { recursive: true }).catch(() => {});
  }
}

/** Runs `cases` with at most `parallel` at once; returns their outcomes in order. */
export async function runCases(
  cases: readonly HostileCase[],
  options: RunCaseOptions & { parallel?: number } = {},
): Promise<CaseOutcome[]> {
  const outcomes: CaseOutcome[] = new Array(cases.length);
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const index = next++;
      outcomes[index] = await runCase(cases[index]!, options);
    }
  };
  await Promise.all(Array.from({ length: options.parallel ?? 3 }, worker));
  return outcomes;
}

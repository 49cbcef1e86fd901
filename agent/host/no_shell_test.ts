/**
 * No shell strings anywhere in the agent: every program it starts gets an
 * argument array, never a command line a shell would split or expand. The scan
 * covers every TypeScript file below agent/ (tests too); the runtime checks show
 * that the one process runner takes a program path and words, not a shell line.
 */
import assert from "node:assert/strict";
import { realProcesses } from "./real_host.ts";

const AGENT = new URL("../", import.meta.url);
const SELF = "host/no_shell_test.ts";

/** Every .ts file below agent/, relative to it, with its text. */
async function sources(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: URL, prefix: string) => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) await walk(new URL(`${entry.name}/`, dir), `${prefix}${entry.name}/`);
      else if (entry.name.endsWith(".ts")) {
        files.set(`${prefix}${entry.name}`, await Deno.readTextFile(new URL(entry.name, dir)));
      }
    }
  };
  await walk(AGENT, "");
  files.delete(SELF);
  return files;
}

/**
 * Files allowed one shell, each with why. The rehearsal (`demo`, simulated hosts
 * only) starts its private systemd manager inside a constant wrapper script; the
 * run's paths reach it as positional words ("$1" …), never spliced into the text.
 */
const SHELL_ALLOWED: Readonly<Record<string, string>> = {
  "rehearsal/private_systemd.ts": "the rehearsal's private manager: a constant wrapper script",
};

/** What must never appear, with why. */
const FORBIDDEN: readonly [RegExp, string][] = [
  [/\b(?:ba|da|z|k)?sh\s+-c\b/, "a shell command line (sh -c / bash -c)"],
  [
    /\bDeno\.Command\(\s*["'`](?:\/(?:usr\/)?bin\/)?(?:ba|da|z|k)?sh["'`]/,
    "a shell as the program",
  ],
  [/["'`](?:\/(?:usr\/)?bin\/)?(?:ba|da|z|k)?sh["'`]\s*,\s*\[\s*["'`]-c["'`]/, "a shell with -c"],
  [/\bDeno\.Command\(\s*`/, "a template string as the program (build the words instead)"],
  [/\bprocesses\.run\(\s*`/, "a template string as the program"],
  [/\bDeno\.run\(/, "Deno.run (a removed API taking a command line)"],
  [
    /node:child_process|from\s+["']child_process["']/,
    "node's child_process (exec takes a shell line)",
  ],
  [/\bshell\s*:\s*true\b/, "a process option running a shell"],
  [/\bexecSync\(|\bexecFile(?:Sync)?\(/, "node's exec helpers"],
];

Deno.test("no shell strings: nothing in agent/ starts a shell or passes a command line", async () => {
  const files = await sources();
  assert.ok(files.size > 100, "the scan finds the agent's sources");
  const hits: string[] = [];
  for (const [file, text] of files) {
    if (file in SHELL_ALLOWED) continue;
    for (const [pattern, what] of FORBIDDEN) {
      const match = pattern.exec(text);
      if (match) {
        const line = text.slice(0, match.index).split("\n").length;
        hits.push(`${file}:${line}: ${what}: ${JSON.stringify(match[0])}`);
      }
    }
  }
  assert.deepEqual(hits, []);
});

Deno.test("no shell strings: the scan catches what it looks for", () => {
  const samples = [
    'new Deno.Command("sh", { args: ["-c", "kexec -e"] })',
    'await processes.run("/bin/bash", ["-c", `kexec ${x}`])',
    "new Deno.Command(`/usr/sbin/kexec -s -l ${image}`)",
    'import { exec } from "node:child_process";',
    "spawn(cmd, { shell: true })",
    "run('sh -c \"reboot\"')",
  ];
  for (const sample of samples) {
    assert.ok(FORBIDDEN.some(([pattern]) => pattern.test(sample)), sample);
  }
});

Deno.test("no shell strings: programs start in four reviewed places, each with an argument array", async () => {
  const files = await sources();
  const commandSites: string[] = [];
  const runSites: string[] = [];
  for (const [file, text] of files) {
    if (file.endsWith("_test.ts")) continue;
    for (const match of text.matchAll(/new Deno\.Command\(\s*([A-Za-z_.]+(?:\(\))?|"[^"\s]+")?/g)) {
      commandSites.push(file);
      // The program is a path variable, Deno.execPath() or one word; the words an `args` array.
      assert.ok(match[1], `${file}: the program is not a plain variable: ${match[0]}`);
      const options = text.slice(match.index! + match[0].length, match.index! + 400);
      assert.match(options, /^,\s*\{\s*args:\s*(\[|[A-Za-z_]+\()/, `${file}: ${match[0]}`);
    }
    for (const match of text.matchAll(/\bprocesses\.run\(\s*([^,]+),\s*([^,)]+)/g)) {
      runSites.push(file);
      assert.match(match[1]!.trim(), /^[A-Za-z_.!]+$/, `${file}: program ${match[1]}`);
      assert.match(match[2]!.trim(), /^(\[|[A-Za-z_.]+$)/, `${file}: arguments ${match[2]}`);
    }
  }
  // Deno.Command: the process runner every layer uses, the build tool, and the
  // rehearsal's simulated kernel and private manager.
  assert.deepEqual([...new Set(commandSites)].sort(), [
    "build/compile.ts",
    "host/real_host.ts",
    "rehearsal/private_systemd.ts",
    "rehearsal/simulator.ts",
  ]);
  // The runner's users: kexec-tools, and kexec.issue = "command" (an argument list).
  assert.deepEqual([...new Set(runSites)].sort(), [
    "cli/update_context.ts",
    "kexec/kexec_tools.ts",
  ]);
});

Deno.test("no shell strings: the process runner takes a program and words, never a shell line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-no-shell-" });
  try {
    // Shell syntax in an argument is one literal word.
    const marker = `${dir}/created`;
    const echo = await realProcesses.run("/bin/echo", [`a; touch ${marker}`, "$(id)", "*"]);
    assert.equal(echo.code, 0);
    assert.equal(echo.stdout, `a; touch ${marker} $(id) *\n`);
    await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
    // A command line as the program is a program of that name, which does not exist.
    await assert.rejects(
      realProcesses.run(`/bin/touch ${marker}`, []),
      Deno.errors.NotFound,
    );
    await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

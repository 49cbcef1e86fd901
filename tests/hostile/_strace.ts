/**
 * What a process really changes on disk, from a system-call trace: runs a command
 * under `strace -ff -y` (one log per process and thread, file descriptors shown
 * with their paths) for the calls that create, open for writing, rename, remove,
 * truncate, chmod or link files, and returns every successful one with the paths
 * it touched.
 *
 * Processes the traced program starts are told apart by their `execve`: writes of
 * a child that became another program (the kexec stand-in, the simulator's
 * control script) are reported with that program, so a check can keep to the
 * agent's own.
 *
 * Needs root-less `strace` (tests/tools/setup_host.sh installs it for the
 * integration tier).
 *
 * @module
 */

/** The system calls traced: every way of changing a file's contents, name or mode. */
export const TRACED = [
  "open",
  "openat",
  "openat2",
  "creat",
  "rename",
  "renameat",
  "renameat2",
  "unlink",
  "unlinkat",
  "mkdir",
  "mkdirat",
  "truncate",
  "ftruncate",
  "chmod",
  "fchmod",
  "fchmodat",
  "symlink",
  "symlinkat",
  "link",
  "linkat",
  "execve",
] as const;

/** One successful change. */
export interface TracedWrite {
  pid: number;
  /** The program the process runs (its last execve), "" when unknown. */
  program: string;
  call: string;
  /** The paths changed (a rename has two), absolute. */
  paths: string[];
  line: string;
}

/** What a traced run did. */
export interface TracedRun {
  code: number;
  stdout: string;
  stderr: string;
  writes: TracedWrite[];
}

const decoder = new TextDecoder();

/** Unquotes a C string as strace prints it ("a\\nb" → a\nb, octal escapes). */
function unquote(text: string): string {
  return text.replace(/\\(x[0-9a-f]{2}|[0-7]{1,3}|.)/g, (_, escape: string) => {
    if (escape.startsWith("x")) return String.fromCharCode(parseInt(escape.slice(1), 16));
    if (/^[0-7]+$/.test(escape)) return String.fromCharCode(parseInt(escape, 8));
    return ({ n: "\n", t: "\t", r: "\r", v: "\v", f: "\f" } as Record<string, string>)[escape] ??
      escape;
  });
}

/** The arguments of a call as strace prints them, split at top-level commas. */
function splitArgs(text: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      current += c;
      if (c === "\\") current += text[++i] ?? "";
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === "{" || c === "[" || c === "(" || c === "<") depth++;
    else if (c === "}" || c === "]" || c === ")" || c === ">") depth--;
    if (c === "," && depth === 0) {
      args.push(current.trim());
      current = "";
    } else current += c;
  }
  if (current.trim()) args.push(current.trim());
  return args;
}

/** The path a directory-fd argument names ("AT_FDCWD</x>" or "5</x>"), if shown. */
function fdPath(arg: string | undefined): string | undefined {
  return arg ? /<(.*)>$/.exec(arg)?.[1] : undefined;
}

/** A path argument ("\"rel\"...") resolved against `dir`. */
function pathArg(arg: string | undefined, dir: string | undefined): string | undefined {
  const match = arg ? /^"((?:[^"\\]|\\.)*)"/.exec(arg) : null;
  if (!match) return undefined;
  const path = unquote(match[1]!);
  if (path.startsWith("/")) return path;
  return dir ? `${dir}/${path}` : path;
}

const WRITE_FLAGS = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND|O_TMPFILE/;

/** The writes of one strace log line, or undefined when it changes nothing. */
export function parseLine(line: string): { call: string; paths: string[] } | undefined {
  const match = /^(\w+)\((.*)\)\s+=\s+(-?\d+)(?:<(.*)>)?/.exec(line);
  if (!match) return undefined;
  const [, call, rawArgs, result, opened] = match;
  if (Number(result) < 0) return undefined;
  // An open's result names the file really opened (symlinks resolved): that one counts.
  if (opened !== undefined && /^(open|openat|openat2|creat)$/.test(call!)) {
    const flags = call === "open"
      ? rawArgs!
      : call === "creat"
      ? "O_CREAT"
      : splitArgs(rawArgs!)[2];
    return WRITE_FLAGS.test(flags ?? "") ? { call: call!, paths: [opened] } : undefined;
  }
  const args = splitArgs(rawArgs!);
  const at = (dirIndex: number, pathIndex: number) =>
    pathArg(args[pathIndex], fdPath(args[dirIndex]));
  const plain = (index: number) => pathArg(args[index], undefined);
  const some = (...paths: (string | undefined)[]) => paths.filter((p): p is string => !!p);
  switch (call) {
    case "open":
      return WRITE_FLAGS.test(args[1] ?? "") ? { call, paths: some(plain(0)) } : undefined;
    case "openat":
      return WRITE_FLAGS.test(args[2] ?? "") ? { call, paths: some(at(0, 1)) } : undefined;
    case "openat2":
      return WRITE_FLAGS.test(args[2] ?? "") ? { call, paths: some(at(0, 1)) } : undefined;
    case "creat":
    case "truncate":
    case "chmod":
    case "mkdir":
    case "unlink":
      return { call, paths: some(plain(0)) };
    case "ftruncate":
    case "fchmod":
      return { call, paths: some(fdPath(args[0])) };
    case "mkdirat":
    case "unlinkat":
    case "fchmodat":
      return { call, paths: some(at(0, 1)) };
    case "rename":
    case "link":
    case "symlink":
      return { call, paths: some(plain(0), plain(1)).slice(call === "symlink" ? 1 : 0) };
    case "renameat":
    case "renameat2":
    case "linkat":
      return { call, paths: some(at(0, 1), at(2, 3)) };
    case "symlinkat":
      return { call, paths: some(at(1, 2)) };
    default:
      return undefined;
  }
}

/** Runs `command` with `args` under strace; returns its output and every write. */
export async function traceWrites(
  command: string,
  args: readonly string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<TracedRun> {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-strace-" });
  try {
    const output = await new Deno.Command("strace", {
      args: [
        "-ff",
        "-y",
        "-qq",
        "-s",
        "4096",
        "-e",
        `trace=${TRACED.join(",")}`,
        "-o",
        `${dir}/trace`,
        "--",
        command,
        ...args,
      ],
      env: options.env,
      cwd: options.cwd,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(options.timeoutMs ?? 300_000),
    }).output();
    const writes: TracedWrite[] = [];
    for await (const entry of Deno.readDir(dir)) {
      const pid = Number(entry.name.slice("trace.".length));
      const text = await Deno.readTextFile(`${dir}/${entry.name}`);
      let program = "";
      for (const line of text.split("\n")) {
        const exec = /^execve\("((?:[^"\\]|\\.)*)".*\)\s+=\s+0/.exec(line);
        if (exec) {
          program = unquote(exec[1]!);
          continue;
        }
        const write = parseLine(line);
        if (write) writes.push({ pid, program, ...write, line });
      }
    }
    // Threads have no execve of their own: they run their process's program. A
    // thread's log names no parent, so it inherits the program of the traced
    // command unless it exec'd itself.
    for (const write of writes) if (write.program === "") write.program = command;
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
      writes,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Running host programs for the VM tier: argument arrays only (never a shell
 * string), output captured, and a failure that names the command and shows the
 * end of its output.
 *
 * @module
 */

/** A program that exited non-zero (or could not be started). */
export class CommandError extends Error {
  override name = "CommandError";
  constructor(
    readonly command: string[],
    readonly code: number,
    readonly output: string,
    options?: ErrorOptions,
  ) {
    const tail = output.trimEnd().split("\n").slice(-25).join("\n");
    super(
      `Command '${command.join(" ")}' failed (exit ${code})${tail ? `:\n${tail}` : ""}`,
      options,
    );
  }
}

/** Options of {@link exec}. */
export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Text written to the program's standard input. */
  stdin?: string;
}

/**
 * Runs `command` (an argument array) and returns its standard output; standard
 * error is kept for the error message. Needs --allow-run.
 */
export async function exec(command: string[], options: ExecOptions = {}): Promise<string> {
  const [program, ...args] = command;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program!, {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new CommandError(command, -1, String(error), { cause: error });
  }
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const result = await child.output();
  const stdout = new TextDecoder().decode(result.stdout);
  if (result.code !== 0) {
    const stderr = new TextDecoder().decode(result.stderr);
    throw new CommandError(command, result.code, `${stdout}\n${stderr}`);
  }
  return stdout;
}

/** Whether `program` can be started at all (found and executable). */
export async function canRun(program: string, args: string[] = ["--version"]): Promise<boolean> {
  try {
    const result = await new Deno.Command(program, { args, stdout: "null", stderr: "null" })
      .output();
    return result.code === 0;
  } catch {
    return false;
  }
}

/**
 * Parsing the command line with `node:util`'s parseArgs: global options anywhere,
 * then one command and its own options.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { closest } from "../config/suggest.ts";
import { UsageError } from "../errors.ts";
import { LEVELS } from "../log/mod.ts";
import type { Command, CommandArgs, OptionSpec } from "./command.ts";
import { GLOBAL_OPTIONS } from "./global_options.ts";

/** The global settings taken from the command line. */
export interface GlobalArgs {
  help: boolean;
  version: boolean;
  configRoot?: string;
  logLevel?: typeof LEVELS[number];
  logFormat?: "auto" | "text" | "journal" | "json";
}

/** A parsed command line. */
export interface ParsedCommandLine {
  global: GlobalArgs;
  /** Undefined when no command was given (`--help`, `--version`, or nothing). */
  command?: Command;
  args: CommandArgs;
}

type ParseArgsOptions = Record<
  string,
  { type: "boolean" | "string"; short?: string; multiple?: boolean }
>;

function toParseArgs(specs: Readonly<Record<string, OptionSpec>>): ParseArgsOptions {
  const result: ParseArgsOptions = {};
  for (const [name, spec] of Object.entries(specs)) {
    result[name] = { type: spec.type };
    if (spec.short) result[name].short = spec.short;
    if (spec.multiple) result[name].multiple = true;
  }
  return result;
}

function usageFromParseError(error: unknown, where: string, known: string[]): UsageError {
  const code = (error as { code?: string }).code;
  const message = String((error as { message?: string }).message ?? error);
  const help = `Run '${where} --help' for usage.`;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const option = /'([^']+)'/.exec(message)?.[1] ?? "";
    const name = option.replace(/^-+/, "").split("=")[0]!;
    const guess = closest(name, known);
    const hint = guess ? ` Did you mean '--${guess}'?` : "";
    return new UsageError(`Unknown option '${option}' for '${where}'.${hint} ${help}`);
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const argument = /'([^']+)'/.exec(message)?.[1] ?? "";
    return new UsageError(`Unexpected argument '${argument}' for '${where}'. ${help}`);
  }
  return new UsageError(`${message.replace(/\.?$/, ".")} ${help}`, { cause: error });
}

function checkChoice<T extends string>(
  option: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(
    `Option '--${option}' is "${value}" but must be one of ${allowed.join(", ")}.`,
  );
}

function globalsFrom(values: Record<string, unknown>): GlobalArgs {
  const configRoot = values["config-root"] as string | undefined;
  if (configRoot !== undefined && configRoot === "") {
    throw new UsageError(
      "Option '--config-root' needs a directory, such as '--config-root=/tmp/root'.",
    );
  }
  const global: GlobalArgs = {
    help: values.help === true,
    version: values.version === true,
  };
  if (configRoot !== undefined) global.configRoot = configRoot;
  const level = checkChoice("log-level", values["log-level"] as string | undefined, LEVELS);
  if (level) global.logLevel = level;
  const format = checkChoice(
    "log-format",
    values["log-format"] as string | undefined,
    ["auto", "text", "journal", "json"] as const,
  );
  if (format) global.logFormat = format;
  return global;
}

/**
 * Parses `argv` (without the program name) against the known commands. Throws
 * {@link UsageError} for anything it cannot accept.
 */
export function parseCommandLine(
  argv: readonly string[],
  commands: readonly Command[],
): ParsedCommandLine {
  // First pass: find the command word, skipping global options and their values.
  const first = parseArgs({
    args: [...argv],
    options: toParseArgs(GLOBAL_OPTIONS),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const commandToken = first.tokens.find((token) => token.kind === "positional");
  if (!commandToken) {
    const unknown = first.tokens.find(
      (token) => token.kind === "option" && !(token.name in GLOBAL_OPTIONS),
    );
    if (unknown && unknown.kind === "option") {
      throw usageFromParseError(
        { code: "ERR_PARSE_ARGS_UNKNOWN_OPTION", message: `Unknown option '${unknown.rawName}'` },
        "liveupdate-agent",
        Object.keys(GLOBAL_OPTIONS),
      );
    }
    const strict = parseArgs({
      args: [...argv],
      options: toParseArgs(GLOBAL_OPTIONS),
      strict: true,
    });
    return { global: globalsFrom(strict.values), args: { values: {}, positionals: [] } };
  }
  const name = commandToken.value;
  const command = commands.find((candidate) => candidate.name === name);
  if (!command) {
    const guess = closest(name, commands.map((candidate) => candidate.name));
    const hint = guess ? ` Did you mean '${guess}'?` : "";
    throw new UsageError(
      `Unknown command '${name}'.${hint} Run 'liveupdate-agent --help' for the list of commands.`,
    );
  }
  const rest = [...argv.slice(0, commandToken.index), ...argv.slice(commandToken.index + 1)];
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  const where = `liveupdate-agent ${command.name}`;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: toParseArgs(options),
      strict: true,
      allowPositionals: (command.positionals?.length ?? 0) > 0,
    });
  } catch (error) {
    throw usageFromParseError(error, where, Object.keys(options));
  }
  const max = command.positionals?.length ?? 0;
  if (parsed.positionals.length > max) {
    throw new UsageError(
      `Too many arguments for '${where}': expected at most ${max}. ` +
        `Run '${where} --help' for usage.`,
    );
  }
  const values: Record<string, string | boolean | string[] | undefined> = {};
  for (const key of Object.keys(command.options)) {
    values[key] = parsed.values[key] as string | boolean | string[] | undefined;
  }
  return {
    global: globalsFrom(parsed.values),
    command,
    args: { values, positionals: parsed.positionals },
  };
}

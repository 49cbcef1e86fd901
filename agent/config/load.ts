/**
 * Finds the configuration drop-ins, parses and validates each, and merges them
 * over the schema's defaults.
 *
 * Directories are read in this order, later files overriding earlier ones key by
 * key; files within a directory in lexical (byte) order:
 *
 *   /usr/lib/liveupdate/config.d/*.toml   (shipped with the OS image)
 *   /etc/liveupdate/config.d/*.toml       (the operator's)
 *   /run/liveupdate/config.d/*.toml       (runtime, for this boot only)
 *
 * As in systemd's drop-in directories, a file with the same name in a later
 * directory replaces the earlier one, and a later file that is empty or a symlink
 * to /dev/null masks it.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import { ConfigError, type ConfigProblem } from "./config_error.ts";
import type { Shape } from "./fields.ts";
import { fleetProblems } from "./fleet_checks.ts";
import { type Config, SCHEMA } from "./schema.ts";
import { parseToml } from "./toml.ts";
import { validateTable } from "./validate.ts";

/** The drop-in directories, lowest precedence first. */
export const DROP_IN_DIRS = [
  "/usr/lib/liveupdate/config.d",
  "/etc/liveupdate/config.d",
  "/run/liveupdate/config.d",
] as const;

/** The merged configuration and where each setting came from. */
export interface LoadedConfig {
  config: Config;
  /** The files merged, in merge order (masked files are left out). */
  sources: string[];
  /** Dotted key → the file that set it last. Keys not listed hold their default. */
  origins: Map<string, string>;
}

/** Options of {@link loadConfig}. */
export interface LoadOptions {
  /** A directory the drop-in directories are looked up under, instead of "/". */
  root?: string;
}

function joinRoot(root: string, dir: string): string {
  return root === "/" ? dir : root.replace(/\/+$/, "") + dir;
}

function errorReason(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) return "the agent lacks the Deno permission";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (error instanceof TypeError && String(error.message).includes("utf-8")) {
    return "it is not UTF-8 text";
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Lists the drop-in files to merge, in merge order, applying same-name
 * replacement and masking. Needs read permission on the drop-in directories.
 */
export async function findDropIns(fs: FileSystem, root = "/"): Promise<string[]> {
  const chosen = new Map<string, string>();
  for (const dir of DROP_IN_DIRS) {
    const full = joinRoot(root, dir);
    let names: string[];
    try {
      names = [];
      for await (const entry of fs.readDir(full)) {
        if (entry.name.endsWith(".toml") && !entry.name.startsWith(".")) names.push(entry.name);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      if (error instanceof Deno.errors.NotADirectory) {
        throw new ConfigError([{
          file: full,
          message: `Config directory "${full}" is not a directory. Remove it or make it one.`,
        }]);
      }
      throw new ConfigError([{
        file: full,
        message: `Cannot list config directory "${full}": ${errorReason(error)}. ` +
          "Check its permissions.",
      }], { cause: error });
    }
    names.sort();
    for (const name of names) {
      chosen.delete(name);
      chosen.set(name, `${full}/${name}`);
    }
  }
  const files: string[] = [];
  for (const file of chosen.values()) {
    if (!await isMask(fs, file)) files.push(file);
  }
  return files;
}

async function isMask(fs: FileSystem, file: string): Promise<boolean> {
  try {
    const info = await fs.lstat(file);
    if (info.isSymlink) return await fs.readLink(file) === "/dev/null";
    return info.isFile && info.size === 0;
  } catch {
    return false;
  }
}

/** The largest drop-in the agent reads; configuration is a few kilobytes. */
export const MAX_DROP_IN_BYTES = 1024 * 1024;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The drop-in directories under `root` that exist, symlinks resolved. */
async function realDirs(fs: FileSystem, root: string): Promise<string[]> {
  const dirs: string[] = [];
  for (const dir of DROP_IN_DIRS) {
    try {
      dirs.push(await fs.realPath(joinRoot(root, dir)));
    } catch {
      // Not there: nothing can resolve into it.
    }
  }
  return dirs;
}

/**
 * The text of drop-in `file`, or why it is refused: it must be a regular file of
 * at most {@link MAX_DROP_IN_BYTES} holding UTF-8, and a symlink must lead to a
 * file inside one of the drop-in directories (`dirs`, resolved) — never to a FIFO
 * that would block the read, a huge file, or a secret elsewhere on the host.
 */
async function readDropIn(
  fs: FileSystem,
  file: string,
  dirs: readonly string[],
): Promise<{ text: string } | { problem: string }> {
  const cannot = (reason: string) => ({
    problem: `Cannot read config file "${file}": ${reason}. Check the file and its permissions.`,
  });
  let info: Deno.FileInfo;
  try {
    info = await fs.stat(file);
  } catch (error) {
    return cannot(errorReason(error));
  }
  if (info.isDirectory) return cannot("it is a directory");
  if (!info.isFile) {
    return {
      problem: `Config file "${file}" is not a regular file (a FIFO, socket or device node); ` +
        "the agent reads configuration only from regular files. Remove it.",
    };
  }
  if (info.size > MAX_DROP_IN_BYTES) {
    return {
      problem: `Config file "${file}" has ${info.size} bytes, more than the ` +
        `${MAX_DROP_IN_BYTES} a drop-in may have. Remove it or split it.`,
    };
  }
  try {
    if ((await fs.lstat(file)).isSymlink) {
      const real = await fs.realPath(file);
      if (!dirs.some((dir) => real.startsWith(`${dir}/`))) {
        return {
          problem: `Config file "${file}" is a symlink to "${real}", outside the configuration ` +
            `directories (${DROP_IN_DIRS.join(", ")}); the agent follows a drop-in symlink only ` +
            "into them. Copy the file into a configuration directory instead.",
        };
      }
    }
    const bytes = await fs.readFile(file);
    if (bytes.length > MAX_DROP_IN_BYTES) {
      return {
        problem: `Config file "${file}" has more than the ${MAX_DROP_IN_BYTES} bytes a drop-in ` +
          "may have. Remove it or split it.",
      };
    }
    try {
      return { text: utf8.decode(bytes) };
    } catch {
      return { problem: `Config file "${file}" is not UTF-8 text (TOML is). Fix its encoding.` };
    }
  } catch (error) {
    return cannot(errorReason(error));
  }
}

function mergeInto(
  target: Record<string, unknown>,
  values: Record<string, unknown>,
  shape: Shape,
  file: string,
  origins: Map<string, string>,
  prefix = "",
): void {
  for (const [name, value] of Object.entries(values)) {
    const spec = shape[name]!;
    const key = prefix + name;
    if (spec.kind === "section") {
      mergeInto(
        target[name] as Record<string, unknown>,
        value as Record<string, unknown>,
        spec.shape,
        file,
        origins,
        `${key}.`,
      );
    } else {
      target[name] = value;
      origins.set(key, file);
    }
  }
}

/** A fresh tree holding every default of `shape`. */
export function defaultsOf(shape: Shape): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(shape)) {
    result[name] = spec.kind === "section" ? defaultsOf(spec.shape) : spec.default;
  }
  return result;
}

function crossCheck(config: Config, origins: Map<string, string>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.target.initrd !== "" && config.target.kernel === "") {
    const file = origins.get("target.initrd")!;
    problems.push({
      file,
      key: "target.initrd",
      message: `Config file "${file}": key "target.initrd" is set but "target.kernel" is not. ` +
        "Set target.kernel to the kernel image the initrd belongs to.",
    });
  }
  if (config.kexec.issue === "command" && !config.kexec.issue_command[0]?.startsWith("/")) {
    const key = "kexec.issue_command";
    const file = origins.get(key) ?? origins.get("kexec.issue")!;
    problems.push({
      file,
      key,
      message: `Config file "${file}": kexec.issue is "command" but kexec.issue_command does not ` +
        'start with an absolute program path. Set it, such as ["/usr/local/bin/kexec-now"].',
    });
  }
  for (const [phase, spec] of Object.entries(config.phases)) {
    const both = spec.stop.filter((unit) => spec.start.includes(unit));
    if (both.length > 0) {
      const key = `phases.${phase}.start`;
      const file = origins.get(key) ?? origins.get(`phases.${phase}.stop`)!;
      problems.push({
        file,
        key,
        message: `Config file "${file}": unit "${both[0]}" is both stopped and started in ` +
          `phase "${phase}". List it in only one of phases.${phase}.stop and ` +
          `phases.${phase}.start.`,
      });
    }
  }
  problems.push(...fleetProblems(config, origins));
  return problems;
}

/**
 * Reads, validates and merges every drop-in over the defaults. Throws
 * {@link ConfigError} listing every problem found. Needs read permission on the
 * drop-in directories.
 */
export async function loadConfig(fs: FileSystem, options: LoadOptions = {}): Promise<LoadedConfig> {
  const sources = await findDropIns(fs, options.root ?? "/");
  const merged = defaultsOf(SCHEMA);
  const origins = new Map<string, string>();
  const problems: ConfigProblem[] = [];
  const dirs = await realDirs(fs, options.root ?? "/");
  for (const file of sources) {
    const read = await readDropIn(fs, file, dirs);
    if ("problem" in read) {
      problems.push({ file, message: read.problem });
      continue;
    }
    const parsed = parseToml(read.text);
    if (!parsed.ok) {
      const { line, column, reason } = parsed.problem;
      problems.push({
        file,
        message: `Config file "${file}" is not valid TOML at line ${line}, column ${column}: ` +
          `${reason}. Fix the syntax.`,
      });
      continue;
    }
    const validated = validateTable(file, parsed.table, SCHEMA);
    problems.push(...validated.problems);
    mergeInto(merged, validated.values, SCHEMA, file, origins);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const config = merged as unknown as Config;
  const crossProblems = crossCheck(config, origins);
  if (crossProblems.length > 0) throw new ConfigError(crossProblems);
  return { config, sources, origins };
}

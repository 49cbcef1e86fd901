/**
 * Preflight checks specific to mainline live update, for the update flow to run
 * before anything changes. Each refuses a kexec that would lose every session
 * without an error anywhere:
 *
 * - a command line (running or target) without `kho=on liveupdate=on`: the
 *   kernel then has no KHO or no LUO, and the sessions are not handed over;
 * - a target loaded with kexec_load(2) (`kexec -l`) instead of
 *   kexec_file_load(2) (`kexec -s -l`): only the latter carries KHO. The kernel
 *   does not say how the loaded image got there (/sys/kernel/kexec_loaded is
 *   just "1"), so the agent must load the target itself and refuses a kernel
 *   it did not load;
 * - kexec-tools' own shutdown loader (Debian's `LOAD_KEXEC=true` in
 *   /etc/default/kexec): its kexec-load script loads with `kexec -l` when
 *   nothing is loaded at shutdown, which turns a failed or undone load into a
 *   silent kexec_load.
 *
 * @module
 */

import type { FileSystem } from "../../host/host.ts";
import { failed, type KernelFs } from "../../host/kernel_fs.ts";

/** One check's outcome. */
export interface PreflightFinding {
  /** A stable name ("target-cmdline", "kexec-tools-loader", …). */
  check: string;
  ok: boolean;
  /** What was found and, when not ok, what to do. */
  message: string;
}

/**
 * The kernel's kstrtobool(): the value a boolean boot parameter gets, or
 * undefined when the kernel would reject the text (and keep its default).
 */
export function kernelBool(text: string): boolean | undefined {
  const first = text[0];
  if (first === undefined) return undefined;
  if ("yYtT1".includes(first)) return true;
  if ("nNfF0".includes(first)) return false;
  if (first === "o" || first === "O") {
    const second = text[1];
    if (second === "n" || second === "N") return true;
    if (second === "f" || second === "F") return false;
  }
  return undefined;
}

/** The value of boolean parameter `name` on `cmdline` (the last one wins, as in the kernel). */
export function cmdlineBool(cmdline: string, name: string): boolean | undefined {
  let value: boolean | undefined;
  for (const word of cmdline.trim().split(/\s+/)) {
    if (word === "--") break; // The rest goes to init.
    if (word.startsWith(`${name}=`)) value = kernelBool(word.slice(name.length + 1));
  }
  return value;
}

/**
 * Checks that `cmdline` turns on KHO and live update (`which`: "running" for
 * /proc/cmdline, "target" for the command line the target will boot with).
 */
export function checkCmdline(cmdline: string, which: "running" | "target"): PreflightFinding {
  const missing: string[] = [];
  for (const name of ["kho", "liveupdate"]) {
    if (cmdlineBool(cmdline, name) !== true) missing.push(`${name}=on`);
  }
  const subject = which === "running"
    ? "The running kernel's command line"
    : "The target's command line";
  if (missing.length === 0) {
    return { check: `${which}-cmdline`, ok: true, message: `${subject} has kho=on liveupdate=on.` };
  }
  return {
    check: `${which}-cmdline`,
    ok: false,
    message: `${subject} lacks ${missing.join(" ")}; ` +
      (which === "running"
        ? "without them this kernel hands nothing over. Boot with them first."
        : "the target would boot without taking the sessions over. Add them to [target] " +
          "cmdline or append."),
  };
}

/** What the kexec-tools defaults files say about the shutdown loader. */
export interface KexecDefaults {
  /** Whether LOAD_KEXEC ends up "true". */
  loadKexec: boolean;
  /** The file that set it last, if any. */
  file?: string;
}

const ASSIGNMENT = /^\s*(?:export\s+)?LOAD_KEXEC=(?:"([^"]*)"|'([^']*)'|([^\s#;]*))/;

/** Evaluates LOAD_KEXEC over the files in the order the script sources them. */
export function parseKexecDefaults(
  files: readonly { file: string; text: string }[],
): KexecDefaults {
  const result: KexecDefaults = { loadKexec: false };
  for (const { file, text } of files) {
    for (const line of text.split("\n")) {
      const match = line.match(ASSIGNMENT);
      if (!match) continue;
      result.loadKexec = (match[1] ?? match[2] ?? match[3]) === "true";
      result.file = file;
    }
  }
  return result;
}

/**
 * Reads kexec-tools' defaults file `file` (`/etc/default/kexec`, config
 * `kexec.tools_defaults`) and the snippets in `<file>.d/` (run-parts order and
 * names) and refuses when LOAD_KEXEC ends up true. Needs read access to both.
 */
export async function checkKexecToolsLoader(
  fs: Pick<FileSystem, "readTextFile" | "readDir">,
  file = "/etc/default/kexec",
): Promise<PreflightFinding> {
  const files: { file: string; text: string }[] = [];
  const main = file;
  try {
    files.push({ file: main, text: await fs.readTextFile(main) });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  try {
    const names: string[] = [];
    for await (const entry of fs.readDir(`${main}.d`)) {
      if (/^[A-Za-z0-9_-]+$/.test(entry.name)) names.push(entry.name);
    }
    for (const name of names.sort()) {
      const snippet = `${main}.d/${name}`;
      files.push({ file: snippet, text: await fs.readTextFile(snippet) });
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const defaults = parseKexecDefaults(files);
  if (!defaults.loadKexec) {
    return {
      check: "kexec-tools-loader",
      ok: true,
      message: files.length
        ? `kexec-tools' shutdown loader is off (LOAD_KEXEC is not true in ${main}).`
        : "kexec-tools' shutdown loader is not configured.",
    };
  }
  return {
    check: "kexec-tools-loader",
    ok: false,
    message: `${defaults.file} sets LOAD_KEXEC=true: kexec-tools' kexec-load would load a kernel ` +
      "with kexec_load (kexec -l) at shutdown, which hands no sessions over — every " +
      `preserved session would be lost without an error. Set LOAD_KEXEC=false in ${defaults.file}.`,
  };
}

/**
 * Checks the kexec image slot: a kernel loaded by anyone but the agent (which
 * loads with kexec_file_load) may have come from kexec_load, which loses every
 * session; the kernel cannot tell which. `loadedByAgent` is the update flow's
 * own record of its load. Reads `<sysfs>/kernel` through the kernel's files.
 */
export function checkLoadedKernel(
  fs: KernelFs,
  sysfs: string,
  loadedByAgent: boolean,
): PreflightFinding {
  const file = `${sysfs}/kernel/kexec_loaded`;
  const bytes = fs.readFile(file, 64);
  if (failed(bytes)) {
    return {
      check: "loaded-kernel",
      ok: false,
      message: `Cannot read ${file} (${bytes.errno}); this kernel may lack CONFIG_KEXEC.`,
    };
  }
  const loaded = new TextDecoder().decode(bytes).trim() === "1";
  if (loaded && !loadedByAgent) {
    return {
      check: "loaded-kernel",
      ok: false,
      message: `A kernel is already loaded (${file} is 1) and the agent did not load it; it may ` +
        "have been loaded with kexec_load (kexec -l), which hands no sessions over. Unload it " +
        "(kexec -u) and let the agent load the target with kexec_file_load.",
    };
  }
  if (!loaded && loadedByAgent) {
    return {
      check: "loaded-kernel",
      ok: false,
      message: `The agent loaded the target but ${file} is 0: something unloaded it. Load it ` +
        "again before the kexec.",
    };
  }
  return {
    check: "loaded-kernel",
    ok: true,
    message: loaded
      ? "The target was loaded by the agent with kexec_file_load."
      : "No kernel is loaded yet.",
  };
}

/**
 * Checks a kexec-tools argument list for a load that carries KHO: `-l`/`--load`
 * together with `-s`/`--kexec-file-syscall`, and never `-c`/`--kexec-syscall` or
 * `-a`/`--kexec-syscall-auto` (which falls back to kexec_load when the file load
 * fails).
 */
export function checkKexecArguments(args: readonly string[]): PreflightFinding {
  // Short options may be bundled ("-sl").
  const shorts = new Set(
    args.filter((arg) => /^-[A-Za-z]+$/.test(arg)).flatMap((arg) => [...arg.slice(1)]),
  );
  const load = args.includes("--load") || shorts.has("l");
  const file = args.includes("--kexec-file-syscall") || shorts.has("s");
  // -c forces kexec_load; -a (--kexec-syscall-auto) falls back to it silently.
  const legacy = args.includes("--kexec-syscall") || args.includes("--kexec-syscall-auto") ||
    shorts.has("c") || shorts.has("a");
  if (load && file && !legacy) {
    return {
      check: "kexec-arguments",
      ok: true,
      message: "The target is loaded with kexec_file_load.",
    };
  }
  return {
    check: "kexec-arguments",
    ok: false,
    message: `kexec ${args.join(" ")} would not load with kexec_file_load (it needs -s and -l, ` +
      "and none of -c, -a, --kexec-syscall, --kexec-syscall-auto): a kernel loaded with " +
      "kexec_load takes no sessions over.",
  };
}

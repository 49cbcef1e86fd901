/**
 * Kernel command lines: splitting them as the kernel does, reading a parameter
 * the way the kernel reads it (the last occurrence wins; booleans as kstrtobool),
 * and the live-update rule: the target must boot with `liveupdate` and `kho` on,
 * or the new kernel panics on the handover it finds.
 *
 * @module
 */

/** Splits a command line into parameters; double quotes group a value with spaces. */
export function splitCmdline(cmdline: string): string[] {
  const params: string[] = [];
  let current = "";
  let quoted = false;
  let active = false;
  for (const char of cmdline) {
    if (char === '"') {
      quoted = !quoted;
      active = true;
    } else if (!quoted && /\s/.test(char)) {
      if (active) params.push(current);
      current = "";
      active = false;
    } else {
      current += char;
      active = true;
    }
  }
  if (active) params.push(current);
  return params;
}

/**
 * The value of parameter `name` as the kernel sees it: the last occurrence wins;
 * `null` for a bare `name` with no `=`; undefined when absent.
 */
export function paramValue(params: readonly string[], name: string): string | null | undefined {
  let value: string | null | undefined;
  for (const param of params) {
    if (param === name) value = null;
    else if (param.startsWith(`${name}=`)) value = param.slice(name.length + 1);
  }
  return value;
}

/** The kernel's kstrtobool: y/Y/1/on → true, n/N/0/off → false, else undefined. */
export function kstrtobool(value: string | null | undefined): boolean | undefined {
  if (!value) return undefined;
  const first = value[0]!;
  if ("yYtT1".includes(first)) return true;
  if ("nNfF0".includes(first)) return false;
  if (first === "o" || first === "O") {
    const second = value[1];
    if (second === "n" || second === "N") return true;
    if (second === "f" || second === "F") return false;
  }
  return undefined;
}

/**
 * Why `cmdline` would make the new kernel panic or lose the handover: a list of
 * sentences, empty when `liveupdate` and `kho` are both on.
 */
export function liveUpdateCmdlineProblems(cmdline: string): string[] {
  const params = splitCmdline(cmdline);
  const problems: string[] = [];
  for (const name of ["liveupdate", "kho"]) {
    const raw = paramValue(params, name);
    const value = kstrtobool(raw);
    if (raw === undefined) {
      problems.push(`The target command line has no "${name}=on"; add it (target.append).`);
    } else if (value !== true) {
      const shown = raw === null ? name : `${name}=${raw}`;
      problems.push(
        `The target command line has "${shown}", which turns ${name} off; the new kernel would ` +
          `panic on the live-update handover. Use "${name}=on".`,
      );
    }
  }
  return problems;
}

/** Parameters the bootloader adds that must not be handed to the target. */
const BOOTLOADER_PARAMS = ["BOOT_IMAGE", "initrd"];

/**
 * The target's command line: `configured` when set, else the running kernel's
 * (without bootloader parameters), with `append` added at the end.
 */
export function targetCmdline(running: string, configured: string, append: string): string {
  const base = configured !== "" ? configured.trim() : splitCmdline(running)
    .filter((param) => !BOOTLOADER_PARAMS.some((name) => param.startsWith(`${name}=`)))
    .map((param) => (/\s/.test(param) ? param.replace(/=(.*)$/, '="$1"') : param))
    .join(" ");
  return [base, append.trim()].filter((part) => part !== "").join(" ");
}

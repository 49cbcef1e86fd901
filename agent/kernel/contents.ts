/**
 * Parsing what the RFC v1 sysfs attributes hold. Strict: the kernel writes
 * `normal\n`, `prepared\n`, `updated\n`, `0\n` or `1\n`; anything else means the
 * agent and the kernel disagree on the interface, and that is an error, never a
 * guess.
 *
 * @module
 */

import { LUO_STATES, type LuoState } from "./kernel.ts";
import { KernelError } from "./kernel_error.ts";
import { quoteContents } from "./kernel_failure.ts";

function unexpected(file: string, contents: string, expected: string): KernelError {
  const what = contents === "" ? "is empty" : `holds ${quoteContents(contents)}`;
  return new KernelError(
    `${file} ${what}, not ${expected}: the kernel's live-update interface is not the one this ` +
      "agent drives (check kernel.backend and the kernel version) or the file is not a sysfs " +
      "attribute (check paths.sysfs).",
    { file, operation: "read" },
  );
}

/** The value without the one newline sysfs ends it with, or undefined if malformed. */
function line(contents: string): string | undefined {
  const value = contents.endsWith("\n") ? contents.slice(0, -1) : contents;
  return /^[a-z0-9]+$/.test(value) ? value : undefined;
}

/** Parses the `state` attribute. Throws KernelError on anything but a known state. */
export function parseState(contents: string, file: string): LuoState {
  const value = line(contents);
  const state = LUO_STATES.find((name) => name === value);
  if (state === undefined) {
    throw unexpected(file, contents, 'a live-update state ("normal", "prepared" or "updated")');
  }
  return state;
}

/** Parses a `0`/`1` attribute (`requested`, `preserved`, `reclaimed`, `enabled`). */
export function parseFlag(contents: string, file: string): boolean {
  const value = line(contents);
  if (value === "1") return true;
  if (value === "0") return false;
  throw unexpected(file, contents, '"0" or "1"');
}

/**
 * LUO ABI versions as text: "MAJOR.MINOR", each a decimal u32.
 *
 * @module
 */

import type { LuoVersion } from "../kernel/mod.ts";

const VERSION = /^(0|[1-9][0-9]{0,9})\.(0|[1-9][0-9]{0,9})$/;

/** Parses "1.0"; undefined for anything else (leading zeros, signs, spaces, > u32). */
export function parseLuoVersion(text: string): LuoVersion | undefined {
  const match = VERSION.exec(text);
  if (!match) return undefined;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  if (major > 0xffffffff || minor > 0xffffffff) return undefined;
  return { major, minor };
}

/** "1.0". */
export function formatLuoVersion(version: LuoVersion): string {
  return `${version.major}.${version.minor}`;
}

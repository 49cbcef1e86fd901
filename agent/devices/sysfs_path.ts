/**
 * Lexical path arithmetic for sysfs links. The agent never asks the file system to
 * resolve a path (no realpath): tests reach a simulated sysfs through
 * /proc/<pid>/root/<mount>, where realpath would leave that prefix, and a link
 * that leads outside `<sysfs>/devices` must be refused, not followed.
 *
 * @module
 */

import type { DevicePath } from "../kernel/kernel.ts";

/** Where a sysfs link leads, or why the agent refuses to follow it. */
export type LinkTarget = { path: DevicePath } | { problem: string };

/**
 * The device a sysfs link leads to, worked out from the link's own location
 * (`linkDir`, relative to the sysfs root, such as "bus/pci/devices") and its
 * target text: the target must be relative, climb only at its start (`../../`),
 * and land below `devices/`. Anything else (an absolute target, `..` or `.` after
 * the first real component, escaping the sysfs root, landing elsewhere) is refused.
 */
export function resolveLink(linkDir: string, target: string): LinkTarget {
  if (target.startsWith("/")) {
    return { problem: `it points to the absolute path "${target}" (sysfs links are relative)` };
  }
  let up = 0;
  let offset = 0;
  while (target.startsWith("../", offset)) {
    up++;
    offset += 3;
  }
  const rest = target.slice(offset);
  if (rest === "" || UNCLEAN.test(rest)) {
    return { problem: `its target "${target}" is not a plain relative path` };
  }
  // linkDir is built by the agent: clean, relative, no trailing slash.
  let base = linkDir;
  for (let i = 0; i < up; i++) {
    if (base === "") return { problem: `its target "${target}" leads outside the sysfs root` };
    const slash = base.lastIndexOf("/");
    base = slash < 0 ? "" : base.slice(0, slash);
  }
  const resolved = base === "" ? rest : `${base}/${rest}`;
  if (!resolved.startsWith("devices/")) {
    return { problem: `its target "${target}" leads to "${resolved}", not below "devices/"` };
  }
  return { path: resolved.slice("devices/".length) };
}

/** A path with an empty, `.` or `..` component, or a trailing slash. */
const UNCLEAN = /(^|\/)\.{0,2}(\/|$)/;

/** Relative, components without "/" or NUL, none empty, "." or "..": tested without allocating. */
const CLEAN_PATH = /^(?:(?!\.\.?(?:\/|$))[^/\0]+)(?:\/(?!\.\.?(?:\/|$))[^/\0]+)*$/;

/** Whether `path` is a clean device path: relative, non-empty components, no `.`/`..`. */
export function isDevicePath(path: string): boolean {
  return CLEAN_PATH.test(path);
}

/** The proper prefixes of a device path, nearest first ("a/b/c" → ["a/b", "a"]). */
export function pathPrefixes(path: DevicePath): DevicePath[] {
  const prefixes: DevicePath[] = [];
  let end = path.lastIndexOf("/");
  while (end > 0) {
    prefixes.push(path.slice(0, end));
    end = path.lastIndexOf("/", end - 1);
  }
  return prefixes;
}

/** Whether `ancestor` is a proper ancestor directory of `path`. */
export function isBelow(path: DevicePath, ancestor: DevicePath): boolean {
  return path.length > ancestor.length && path.startsWith(ancestor) &&
    path[ancestor.length] === "/";
}

/**
 * The udev database's per-device file (`/run/udev/data/<id>`), as systemd-udevd
 * writes it: one `<key>:<value>` line per item.
 *
 * | key | value |
 * |-----|-------|
 * | `E` | a property, `NAME=value` (an empty value unsets the property) |
 * | `G` | a tag ever set on the device (the tag index keeps these: sticky) |
 * | `Q` | a tag the rules set now (database version 1, systemd ≥ 247) |
 * | `S` | a /dev symlink, relative to /dev |
 * | `L` | the symlink priority (integer) |
 * | `I` | when the device was initialized (µs, CLOCK_MONOTONIC) |
 * | `V` | the database version (absent: 0, where every `G` tag is current) |
 * | `W` | the inotify watch handle (deprecated, ignored) |
 *
 * udev's own variations are accepted: a missing `I`, `V` or `Q`, blank lines,
 * `W` lines, and keys it may add in the future (ignored, like udev does).
 * Anything udev never writes is rejected with the line number: a line that is
 * not `<key>:<value>`, a property without `=`, a non-numeric `I`/`L`/`V`, an
 * invalid tag, NUL bytes, or a last line without its newline (a truncated file).
 * Property names must be free of blanks and control characters; values are kept
 * as written.
 *
 * @module
 */

/** What the agent uses of a device's udev data. */
export interface UdevRecord {
  /** `E:` properties; the last line wins, as in udev. */
  properties: Map<string, string>;
  /** `G:` tags (ever set; sticky). */
  tags: Set<string>;
  /** The tags the rules set now: `Q:`, or for a version-0 database every `G:` tag. */
  currentTags: Set<string>;
  /** `S:` symlinks below /dev. */
  devlinks: string[];
  /** `I:` in microseconds, as digits. */
  initialized?: string;
  /** `V:`, 0 when absent. */
  version: number;
}

/** A line udev never writes. */
export interface UdevDataProblem {
  /** 1-based line number, or 0 for the file as a whole. */
  line: number;
  problem: string;
}

const UNSIGNED = /^(0|[1-9][0-9]{0,19})$/;
const SIGNED = /^-?(0|[1-9][0-9]{0,9})$/;
const NEWLINE = 10;
const COLON = 58;
const SPACE = 32;

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? text.slice(0, 77) + "..." : text);
}

/** Whether text[start, end) holds a character ≤ space (control or blank), or `extra`. */
function hasBlank(text: string, start: number, end: number, extra = -1): boolean {
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code <= SPACE || code === 127 || code === extra) return true;
  }
  return false;
}

/**
 * Parses the contents of a data file; returns the first problem instead when it is
 * not udev's. Every line is checked; properties are kept only when their name is in
 * `keep` (all of them when `keep` is undefined), so a selection of thousands of
 * devices does not hold every property of each.
 */
export function parseUdevData(
  text: string,
  keep?: ReadonlySet<string>,
): UdevRecord | UdevDataProblem {
  const record: UdevRecord = {
    properties: new Map(),
    tags: new Set(),
    currentTags: new Set(),
    devlinks: [],
    version: 0,
  };
  if (text.length === 0) return record;
  if (text.includes("\0")) return { line: 0, problem: "it contains NUL bytes" };
  if (text.charCodeAt(text.length - 1) !== NEWLINE) {
    return { line: 0, problem: "its last line has no newline (a truncated file?)" };
  }
  const current = new Set<string>();
  let lineNumber = 0;
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf("\n", start);
    const lineStart = start;
    start = end + 1;
    lineNumber++;
    if (end === lineStart) continue;
    const bad = (what: string): UdevDataProblem => ({
      line: lineNumber,
      problem: `${quote(text.slice(lineStart, end))} ${what}`,
    });
    if (end - lineStart < 2 || text.charCodeAt(lineStart + 1) !== COLON) {
      return bad('is not a "<key>:<value>" line');
    }
    const valueStart = lineStart + 2;
    switch (text[lineStart]) {
      case "E": {
        const equals = text.indexOf("=", valueStart);
        if (
          equals < 0 || equals >= end || equals === valueStart ||
          hasBlank(text, valueStart, equals)
        ) {
          return bad('is not a property "E:NAME=value"');
        }
        const name = text.slice(valueStart, equals);
        if (keep === undefined || keep.has(name)) {
          record.properties.set(name, text.slice(equals + 1, end));
        }
        break;
      }
      case "G":
      case "Q": {
        if (end === valueStart || hasBlank(text, valueStart, end, COLON)) {
          return bad("does not name a valid tag");
        }
        const tag = text.slice(valueStart, end);
        record.tags.add(tag);
        if (text[lineStart] === "Q") current.add(tag);
        break;
      }
      case "S":
        if (end === valueStart) return bad("names no symlink");
        record.devlinks.push(text.slice(valueStart, end));
        break;
      case "I": {
        const value = text.slice(valueStart, end);
        if (!UNSIGNED.test(value)) return bad("is not a time in microseconds");
        record.initialized = value;
        break;
      }
      case "L":
        if (!SIGNED.test(text.slice(valueStart, end))) return bad("is not a link priority");
        break;
      case "V": {
        const value = text.slice(valueStart, end);
        if (!UNSIGNED.test(value) || value.length > 9) return bad("is not a database version");
        record.version = Number(value);
        break;
      }
      default:
        // "W" (deprecated) and keys a newer udev may add: ignored, as udev does.
        break;
    }
  }
  record.currentTags = record.version >= 1 ? current : new Set(record.tags);
  return record;
}

/** Whether `result` is a problem rather than a record. */
export function isUdevDataProblem(
  result: UdevRecord | UdevDataProblem,
): result is UdevDataProblem {
  return "problem" in result;
}

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
 * as written (decoded as UTF-8).
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
  currentTags: ReadonlySet<string>;
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

const NEWLINE = 10;
const COLON = 58;
const EQUALS = 61;
const SPACE = 32;
const DELETE = 127;
const ZERO = 48;
const NINE = 57;
const MINUS = 45;

const decoder = new TextDecoder();
const encoder = new TextEncoder();

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? text.slice(0, 77) + "..." : text);
}

/** Whether bytes[start, end) hold a blank or control character, or `extra`. */
function hasBlank(bytes: Uint8Array, start: number, end: number, extra = -1): boolean {
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte <= SPACE || byte === DELETE || byte === extra) return true;
  }
  return false;
}

/** Whether bytes[start, end) are 1–`max` decimal digits without a leading zero. */
function isNumber(bytes: Uint8Array, start: number, end: number, max: number): boolean {
  const length = end - start;
  if (length < 1 || length > max) return false;
  if (length > 1 && bytes[start] === ZERO) return false;
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte < ZERO || byte > NINE) return false;
  }
  return true;
}

const NO_TAGS: ReadonlySet<string> = new Set();

function badLine(
  bytes: Uint8Array,
  start: number,
  end: number,
  line: number,
  what: string,
): UdevDataProblem {
  return { line, problem: `${quote(decoder.decode(bytes.subarray(start, end)))} ${what}` };
}

/** Property names to keep, grouped by byte length, for comparing without decoding. */
type KeepIndex = Map<number, Uint8Array[]>;

function keepIndex(keep: ReadonlySet<string>): KeepIndex {
  const index: KeepIndex = new Map();
  for (const name of keep) {
    const bytes = encoder.encode(name);
    const list = index.get(bytes.length) ?? [];
    list.push(bytes);
    index.set(bytes.length, list);
  }
  return index;
}

const keepIndexes = new WeakMap<ReadonlySet<string>, KeepIndex>();

function kept(index: KeepIndex, bytes: Uint8Array, start: number, end: number): boolean {
  const candidates = index.get(end - start);
  if (!candidates) return false;
  outer: for (const name of candidates) {
    for (let i = 0; i < name.length; i++) if (name[i] !== bytes[start + i]) continue outer;
    return true;
  }
  return false;
}

/**
 * Parses the bytes of a data file; returns the first problem instead when it is not
 * udev's. Every line is checked; with `keep`, only the properties named there are
 * decoded and kept (and `S:`/`I:` lines are checked but not kept), so a selection
 * of thousands of devices neither decodes nor holds what it does not use.
 */
export function parseUdevData(
  bytes: Uint8Array,
  keep?: ReadonlySet<string>,
): UdevRecord | UdevDataProblem {
  const record: UdevRecord = {
    properties: new Map(),
    tags: new Set(),
    currentTags: NO_TAGS,
    devlinks: [],
    version: 0,
  };
  if (bytes.length === 0) return record;
  if (bytes.indexOf(0) >= 0) return { line: 0, problem: "it contains NUL bytes" };
  if (bytes[bytes.length - 1] !== NEWLINE) {
    return { line: 0, problem: "its last line has no newline (a truncated file?)" };
  }
  let index: KeepIndex | undefined;
  if (keep) {
    index = keepIndexes.get(keep);
    if (!index) keepIndexes.set(keep, index = keepIndex(keep));
  }
  let current: Set<string> | undefined;
  let lineNumber = 0;
  let start = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(NEWLINE, start);
    const lineStart = start;
    start = end + 1;
    lineNumber++;
    if (end === lineStart) continue;
    if (end - lineStart < 2 || bytes[lineStart + 1] !== COLON) {
      return badLine(bytes, lineStart, end, lineNumber, 'is not a "<key>:<value>" line');
    }
    const valueStart = lineStart + 2;
    switch (bytes[lineStart]) {
      case 69: { // E
        const equals = bytes.indexOf(EQUALS, valueStart);
        if (
          equals < 0 || equals >= end || equals === valueStart ||
          hasBlank(bytes, valueStart, equals)
        ) {
          return badLine(bytes, lineStart, end, lineNumber, 'is not a property "E:NAME=value"');
        }
        if (index === undefined || kept(index, bytes, valueStart, equals)) {
          record.properties.set(
            decoder.decode(bytes.subarray(valueStart, equals)),
            decoder.decode(bytes.subarray(equals + 1, end)),
          );
        }
        break;
      }
      case 71: // G
      case 81: { // Q
        if (end === valueStart || hasBlank(bytes, valueStart, end, COLON)) {
          return badLine(bytes, lineStart, end, lineNumber, "does not name a valid tag");
        }
        const tag = decoder.decode(bytes.subarray(valueStart, end));
        record.tags.add(tag);
        if (bytes[lineStart] === 81) (current ??= new Set()).add(tag);
        break;
      }
      case 83: // S
        if (end === valueStart) {
          return badLine(bytes, lineStart, end, lineNumber, "names no symlink");
        }
        if (!keep) record.devlinks.push(decoder.decode(bytes.subarray(valueStart, end)));
        break;
      case 73: // I
        if (!isNumber(bytes, valueStart, end, 20)) {
          return badLine(bytes, lineStart, end, lineNumber, "is not a time in microseconds");
        }
        if (!keep) record.initialized = decoder.decode(bytes.subarray(valueStart, end));
        break;
      case 76: { // L
        const digits = bytes[valueStart] === MINUS ? valueStart + 1 : valueStart;
        if (!isNumber(bytes, digits, end, 10)) {
          return badLine(bytes, lineStart, end, lineNumber, "is not a link priority");
        }
        break;
      }
      case 86: { // V
        if (!isNumber(bytes, valueStart, end, 9)) {
          return badLine(bytes, lineStart, end, lineNumber, "is not a database version");
        }
        let version = 0;
        for (let i = valueStart; i < end; i++) version = version * 10 + bytes[i]! - ZERO;
        record.version = version;
        break;
      }
      default:
        // "W" (deprecated) and keys a newer udev may add: ignored, as udev does.
        break;
    }
  }
  // Version 0 (systemd < 247) has no Q: lines, and every G: tag is current.
  record.currentTags = record.version >= 1 ? current ?? NO_TAGS : record.tags;
  return record;
}

/** Whether `result` is a problem rather than a record. */
export function isUdevDataProblem<T extends object>(
  result: T | UdevDataProblem,
): result is UdevDataProblem {
  return "problem" in result;
}

/** What the device selection needs of a data file. */
export interface UdevFacts {
  /** The properties asked for, as in {@link UdevRecord.properties} (the last line wins). */
  properties: Map<string, string>;
  /** Whether the rules set the tag asked for now (in {@link UdevRecord.currentTags}). */
  tagged: boolean;
}

/**
 * A whole data file as udev writes it, in ASCII: every line empty or one of the
 * forms {@link parseUdevData} accepts (a subset of them: anything else is left to
 * it). Tested by the regular expression engine in one pass instead of byte by byte.
 */
const ASCII_FILE =
  // deno-lint-ignore no-control-regex -- the file format is defined over control characters
  /^(?:(?:E:[^\x00-\x20\x7f=]+=[^\n\x00\x80-\uffff]*|[GQ]:[^\x00-\x20\x7f:\x80-\uffff]+|S:[^\n\x00\x80-\uffff]+|I:(?:0|[1-9][0-9]{0,19})|L:-?(?:0|[1-9][0-9]{0,9})|V:(?:0|[1-9][0-9]{0,8})|[\x01-\x09\x0b-\x7f](?<![EGQSILV]):[^\n\x00\x80-\uffff]*)?\n)*$/;
/** A property name or tag that can be looked for as text in such a file. */
// deno-lint-ignore no-control-regex -- a name must not hold control characters
const PLAIN_NAME = /^[^\x00-\x20\x7f=:\x80-\uffff]+$/;

/** The value of the last line starting with `prefix` in `text`, if any. */
function lastValue(text: string, prefix: string): string | undefined {
  const at = text.lastIndexOf(`\n${prefix}`);
  const start = at >= 0 ? at + 1 + prefix.length : text.startsWith(prefix) ? prefix.length : -1;
  return start < 0 ? undefined : text.slice(start, text.indexOf("\n", start));
}

/** Whether `text` has the line `line`. */
function hasLine(text: string, line: string): boolean {
  return text.startsWith(`${line}\n`) || text.includes(`\n${line}\n`);
}

/**
 * The properties named in `keep` and whether `tag` is current, from the bytes of a
 * data file, or the first problem (exactly as {@link parseUdevData} finds them).
 * The common file — ASCII, every line of a form udev writes — is checked by one
 * regular expression and searched as text, which costs a fraction of reading it
 * byte by byte; anything else goes through {@link parseUdevData}.
 */
export function udevFacts(
  bytes: Uint8Array,
  tag: string,
  keep: ReadonlySet<string>,
): UdevFacts | UdevDataProblem {
  const text = decoder.decode(bytes);
  if (
    text.length === bytes.length && ASCII_FILE.test(text) && PLAIN_NAME.test(tag) &&
    [...keep].every((name) => PLAIN_NAME.test(name))
  ) {
    const version = Number(lastValue(text, "V:") ?? 0);
    const properties = new Map<string, string>();
    for (const name of keep) {
      const value = lastValue(text, `E:${name}=`);
      if (value !== undefined) properties.set(name, value);
    }
    // Version 0 (systemd < 247) has no Q: lines, and every tag listed is current.
    const tagged = hasLine(text, `Q:${tag}`) || (version === 0 && hasLine(text, `G:${tag}`));
    return { properties, tagged };
  }
  const record = parseUdevData(bytes, keep);
  if (isUdevDataProblem(record)) return record;
  return { properties: record.properties, tagged: record.currentTags.has(tag) };
}

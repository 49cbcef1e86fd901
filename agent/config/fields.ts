/**
 * The building blocks of the configuration schema: typed fields with defaults,
 * documentation, a parser that accepts or rejects a raw TOML value, and the
 * expected form quoted in error messages.
 *
 * @module
 */

import { formatDuration, parseDuration } from "./duration.ts";

/** The outcome of parsing one raw value. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; detail?: string };

/** One configuration key. */
export interface Field<T> {
  readonly kind: "field";
  /** What the key means, for the README and `config --help`. */
  readonly doc: string;
  /** The value used when no file sets the key. */
  readonly default: T;
  /** The expected form, quoted in error messages ("a duration such as \"90s\""). */
  readonly expected: string;
  /** Accepts or rejects a raw TOML value. */
  parse(raw: unknown): ParseResult<T>;
  /** The TOML value that writes `value` back. */
  toToml(value: T): unknown;
}

/** A TOML table of keys and nested tables. */
export interface Section<S extends Shape> {
  readonly kind: "section";
  readonly doc: string;
  readonly shape: S;
}

/** The keys of a section. */
export type Shape = { readonly [key: string]: Field<unknown> | Section<Shape> };

/** The typed value of a section: what the rest of the agent reads. */
export type ValueOf<S extends Shape> = {
  readonly [K in keyof S]: S[K] extends Field<infer T> ? T
    : S[K] extends Section<infer I> ? ValueOf<I>
    : never;
};

/** Declares a section (a TOML table). */
export function section<S extends Shape>(doc: string, shape: S): Section<S> {
  return { kind: "section", doc, shape };
}

function field<T>(
  doc: string,
  defaultValue: T,
  expected: string,
  parse: (raw: unknown) => ParseResult<T>,
  toToml: (value: T) => unknown = (value) => value,
): Field<T> {
  return { kind: "field", doc, default: defaultValue, expected, parse, toToml };
}

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const bad = <T>(detail?: string): ParseResult<T> =>
  detail === undefined ? { ok: false } : { ok: false, detail };

/** Options for {@link text}. */
export interface TextOptions {
  pattern?: RegExp;
  expected?: string;
  /** A further check of a value that matched: returns why it is wrong, or undefined. */
  check?: (value: string) => string | undefined;
}

/** A string, optionally matching a pattern. */
export function text(doc: string, defaultValue: string, options: TextOptions = {}): Field<string> {
  const expected = options.expected ?? "a string";
  return field(doc, defaultValue, expected, (raw) => {
    if (typeof raw !== "string") return bad();
    if (raw.includes("\0")) return bad("it contains a NUL character");
    if (options.pattern && !options.pattern.test(raw)) return bad();
    const problem = options.check?.(raw);
    if (problem !== undefined) return bad(problem);
    return ok(raw);
  });
}

/** Checks that `raw` is a clean absolute path; returns why not, or undefined. */
export function pathProblem(raw: string): string | undefined {
  if (!raw.startsWith("/")) return "it is not an absolute path";
  if (raw.includes("\0")) return "it contains a NUL character";
  if (raw.split("/").some((part) => part === "..")) return "it contains a '..' component";
  return undefined;
}

/** An absolute path; `optional` allows the empty string for "not set". */
export function path(
  doc: string,
  defaultValue: string,
  options: { optional?: boolean } = {},
): Field<string> {
  const expected = options.optional
    ? 'an absolute path such as "/var/lib/liveupdate", or "" for none'
    : 'an absolute path such as "/var/lib/liveupdate"';
  return field(doc, defaultValue, expected, (raw) => {
    if (typeof raw !== "string") return bad();
    if (raw === "" && options.optional) return ok(raw);
    const problem = pathProblem(raw);
    if (problem) return bad(problem);
    const normal = raw.replace(/\/{2,}/g, "/").replace(/(.)\/$/, "$1");
    return ok(normal);
  });
}

/** A boolean. */
export function flag(doc: string, defaultValue: boolean): Field<boolean> {
  return field(doc, defaultValue, "true or false", (raw) => {
    return typeof raw === "boolean" ? ok(raw) : bad();
  });
}

/** An integer within bounds. */
export function integer(
  doc: string,
  defaultValue: number,
  bounds: { min: number; max: number },
): Field<number> {
  const expected = `an integer from ${bounds.min} to ${bounds.max}`;
  return field(doc, defaultValue, expected, (raw) => {
    const value = typeof raw === "bigint" ? Number(raw) : raw;
    if (typeof value !== "number" || !Number.isInteger(value)) return bad();
    if (value < bounds.min || value > bounds.max) return bad("it is out of range");
    return ok(value);
  });
}

/** A duration (stored in milliseconds), written as "90s", "5min", or bare seconds. */
export function duration(
  doc: string,
  defaultText: string,
  bounds: { min: string; max: string },
): Field<number> {
  const min = parseDuration(bounds.min)!;
  const max = parseDuration(bounds.max)!;
  const expected = `a duration from "${bounds.min}" to "${bounds.max}", such as "90s" or "5min"`;
  return field(doc, parseDuration(defaultText)!, expected, (raw) => {
    let ms: number | undefined;
    if (typeof raw === "string") ms = parseDuration(raw);
    else if (typeof raw === "number" && Number.isInteger(raw) && raw >= 0) ms = raw * 1000;
    else if (typeof raw === "bigint" && raw >= 0n) ms = Number(raw) * 1000;
    if (ms === undefined) return bad();
    if (ms < min || ms > max) return bad("it is out of range");
    return ok(ms);
  }, formatDuration);
}

/** One of a fixed set of strings. */
export function choice<const V extends string>(
  doc: string,
  values: readonly V[],
  defaultValue: NoInfer<V>,
): Field<V> {
  const expected = `one of ${values.map((v) => `"${v}"`).join(", ")}`;
  return field(doc, defaultValue, expected, (raw) => {
    return typeof raw === "string" && (values as readonly string[]).includes(raw)
      ? ok(raw as V)
      : bad();
  });
}

const UNIT_NAME =
  /^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(service|target|socket|mount|timer|path|slice|scope|device|swap|automount)$/;

/** Whether `name` is a valid systemd unit name with a type suffix. */
export function isUnitName(name: string): boolean {
  return name.length <= 255 && UNIT_NAME.test(name);
}

/** A list of systemd unit names ("vmm.service", "storage.target"). */
export function unitList(doc: string, defaultValue: readonly string[]): Field<readonly string[]> {
  const expected = 'a list of unit names such as ["vmm.service"]';
  return field(doc, defaultValue, expected, (raw) => {
    if (!Array.isArray(raw)) return bad();
    for (const item of raw) {
      if (typeof item !== "string" || !isUnitName(item)) {
        return bad(`"${String(item)}" is not a unit name with a type suffix`);
      }
    }
    if (new Set(raw).size !== raw.length) return bad("it lists a unit twice");
    return ok(raw as string[]);
  });
}

/** A list of strings, each matching a pattern. */
export function textList(
  doc: string,
  defaultValue: readonly string[],
  options: { pattern: RegExp; expected: string },
): Field<readonly string[]> {
  return field(doc, defaultValue, options.expected, (raw) => {
    if (!Array.isArray(raw)) return bad();
    for (const item of raw) {
      if (typeof item !== "string" || !options.pattern.test(item)) {
        return bad(`"${String(item)}" does not match`);
      }
    }
    return ok(raw as string[]);
  });
}

/** A table of string keys to string values, both matching patterns. */
export function textMap(
  doc: string,
  options: { key: RegExp; value: RegExp; expected: string },
): Field<Readonly<Record<string, string>>> {
  return field(doc, {}, options.expected, (raw) => {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return bad();
    const result: Record<string, string> = {};
    for (const [key, value] of Object.entries(raw)) {
      if (!options.key.test(key)) return bad(`the name "${key}" is not allowed`);
      if (typeof value !== "string" || !options.value.test(value)) {
        return bad(`the value of "${key}" is not allowed`);
      }
      result[key] = value;
    }
    return ok(result);
  });
}

/** A table of string keys to integers within bounds. */
export function integerMap(
  doc: string,
  options: { key: RegExp; min: number; max: number; expected: string },
): Field<Readonly<Record<string, number>>> {
  return field(doc, {}, options.expected, (raw) => {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw) || raw instanceof Date) {
      return bad();
    }
    const result: Record<string, number> = {};
    for (const [key, value] of Object.entries(raw)) {
      if (!options.key.test(key)) return bad(`the name "${key}" is not allowed`);
      const number = typeof value === "bigint" ? Number(value) : value;
      if (typeof number !== "number" || !Number.isInteger(number)) {
        return bad(`the value of "${key}" is not an integer`);
      }
      if (number < options.min || number > options.max) {
        return bad(`the value of "${key}" is out of range`);
      }
      result[key] = number;
    }
    return ok(result);
  });
}

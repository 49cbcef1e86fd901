/**
 * Checks one parsed configuration file against the schema: unknown keys (with a
 * suggestion), tables where tables belong, and every value's form.
 *
 * @module
 */

import type { ConfigProblem } from "./config_error.ts";
import type { Field, Shape } from "./fields.ts";
import { closest } from "./suggest.ts";

/** The keys one file sets (a partial tree of parsed values) and what was wrong. */
export interface ValidatedTable {
  values: Record<string, unknown>;
  problems: ConfigProblem[];
}

/** Describes a raw TOML value in a few characters, for error messages. */
export function describeValue(value: unknown): string {
  let text: string;
  if (typeof value === "string") text = JSON.stringify(value);
  else if (Array.isArray(value)) text = `[${value.map(describeValue).join(", ")}]`;
  else if (value instanceof Date) text = `a date (${value.toISOString()})`;
  else if (typeof value === "object" && value !== null) text = "a table";
  else text = String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

/** Every dotted key of the schema, for suggestions across sections. */
export function allKeys(shape: Shape, prefix = ""): string[] {
  const keys: string[] = [];
  for (const [name, spec] of Object.entries(shape)) {
    const key = prefix + name;
    if (spec.kind === "section") keys.push(...allKeys(spec.shape, `${key}.`));
    else keys.push(key);
  }
  return keys;
}

function unknownKey(file: string, key: string, shape: Shape, root: Shape): ConfigProblem {
  const name = key.split(".").at(-1)!;
  const prefix = key.slice(0, key.length - name.length);
  const nearby = closest(name, Object.keys(shape));
  let hint = "";
  if (nearby !== undefined) {
    hint = `; did you mean "${prefix}${nearby}"?`;
  } else {
    const elsewhere = allKeys(root).find((candidate) => candidate.endsWith(`.${name}`));
    if (elsewhere !== undefined) hint = `; did you mean "${elsewhere}"?`;
  }
  const what = prefix === "" ? "section" : "key";
  return {
    file,
    key,
    message: `Config file "${file}": unknown ${what} "${key}"${hint} ` +
      "Remove it or correct the spelling (see `liveupdate-agent config --reference`).",
  };
}

function badValue(
  file: string,
  key: string,
  value: unknown,
  spec: Field<unknown>,
  detail?: string,
): ConfigProblem {
  const why = detail ? ` (${detail})` : "";
  const fallback = describeValue(spec.toToml(spec.default));
  return {
    file,
    key,
    message: `Config file "${file}": key "${key}" is ${describeValue(value)}${why}, ` +
      `but must be ${spec.expected}. Fix the value, or remove the key to use the default ` +
      `${fallback}.`,
  };
}

/**
 * Validates the table parsed from `file` against `shape`. Returns the parsed values
 * of every valid key and one problem per invalid or unknown key.
 */
export function validateTable(
  file: string,
  raw: Record<string, unknown>,
  shape: Shape,
  root: Shape = shape,
  prefix = "",
): ValidatedTable {
  const values: Record<string, unknown> = {};
  const problems: ConfigProblem[] = [];
  for (const [name, value] of Object.entries(raw)) {
    const key = prefix + name;
    const spec = shape[name];
    if (spec === undefined) {
      problems.push(unknownKey(file, key, shape, root));
    } else if (spec.kind === "section") {
      if (!isTable(value)) {
        problems.push({
          file,
          key,
          message: `Config file "${file}": "${key}" is ${describeValue(value)}, but must be a ` +
            `table ([${key}]) of keys. Write it as a [${key}] section.`,
        });
        continue;
      }
      const inner = validateTable(file, value, spec.shape, root, `${key}.`);
      values[name] = inner.values;
      problems.push(...inner.problems);
    } else {
      const result = spec.parse(value);
      if (result.ok) values[name] = result.value;
      else problems.push(badValue(file, key, value, spec, result.detail));
    }
  }
  return { values, problems };
}

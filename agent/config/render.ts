/**
 * Writing the effective configuration back out: as TOML with the file each
 * setting came from, as JSON, and as the reference table in the README.
 *
 * @module
 */

import type { Shape } from "./fields.ts";
import type { LoadedConfig } from "./load.ts";
import { SCHEMA } from "./schema.ts";

function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

/** Writes a plain value (string, number, boolean, list, table) as a TOML literal. */
export function tomlLiteral(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlLiteral).join(", ")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).map(([k, v]) => `${tomlKey(k)} = ${tomlLiteral(v)}`);
    return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
  }
  throw new TypeError(`Cannot write ${String(value)} as TOML`);
}

function renderSection(
  lines: string[],
  shape: Shape,
  values: Record<string, unknown>,
  origins: Map<string, string>,
  prefix: string,
): void {
  const fields = Object.entries(shape).filter(([, spec]) => spec.kind === "field");
  if (fields.length > 0) {
    if (lines.length > 0) lines.push("");
    lines.push(`[${prefix.slice(0, -1)}]`);
    for (const [name, spec] of fields) {
      if (spec.kind !== "field") continue;
      const origin = origins.get(prefix + name);
      const comment = origin ? `  # ${origin}` : "";
      lines.push(`${name} = ${tomlLiteral(spec.toToml(values[name]))}${comment}`);
    }
  }
  for (const [name, spec] of Object.entries(shape)) {
    if (spec.kind !== "section") continue;
    renderSection(
      lines,
      spec.shape,
      values[name] as Record<string, unknown>,
      origins,
      `${prefix}${name}.`,
    );
  }
}

/** The effective configuration as TOML; settings not at their default name their file. */
export function renderToml(loaded: LoadedConfig): string {
  const lines: string[] = [];
  const root = loaded.config as unknown as Record<string, unknown>;
  for (const [name, spec] of Object.entries(SCHEMA)) {
    renderSection(
      lines,
      spec.shape,
      root[name] as Record<string, unknown>,
      loaded.origins,
      `${name}.`,
    );
  }
  return lines.join("\n") + "\n";
}

function jsonValues(shape: Shape, values: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(shape)) {
    result[name] = spec.kind === "section"
      ? jsonValues(spec.shape, values[name] as Record<string, unknown>)
      : spec.toToml(values[name]);
  }
  return result;
}

/** Version of the `config --json` document. */
export const CONFIG_JSON_VERSION = 1;

/**
 * The effective configuration as a JSON document:
 * `{ version, sources, origins, config }`, values written as in TOML files.
 */
export function configJson(loaded: LoadedConfig): Record<string, unknown> {
  return {
    version: CONFIG_JSON_VERSION,
    sources: loaded.sources,
    origins: Object.fromEntries(loaded.origins),
    config: jsonValues(SCHEMA, loaded.config as unknown as Record<string, unknown>),
  };
}

function referenceRows(shape: Shape, prefix: string, rows: string[]): void {
  for (const [name, spec] of Object.entries(shape)) {
    const key = prefix + name;
    if (spec.kind === "section") {
      referenceRows(spec.shape, `${key}.`, rows);
      continue;
    }
    const fallback = tomlLiteral(spec.toToml(spec.default)).replaceAll("|", "\\|");
    rows.push(`| \`${key}\` | \`${fallback}\` | ${spec.doc.replaceAll("|", "\\|")} |`);
  }
}

/** The configuration reference as a Markdown table (key, default, meaning). */
export function renderReference(): string {
  const rows = ["| key | default | meaning |", "| --- | --- | --- |"];
  referenceRows(SCHEMA, "", rows);
  return rows.join("\n") + "\n";
}

/**
 * The one entry point of the TOML parser (npm:smol-toml) into the agent, so it can
 * be swapped in one place.
 *
 * @module
 */

import { parse, TomlError } from "smol-toml";

/** Where and why a TOML document failed to parse. */
export interface TomlSyntaxProblem {
  line: number;
  column: number;
  reason: string;
}

/**
 * Parses a TOML document into plain objects. Returns the table, or the syntax
 * problem (line, column and a one-line reason) when the text is not valid TOML.
 */
export function parseToml(
  text: string,
): { ok: true; table: Record<string, unknown> } | { ok: false; problem: TomlSyntaxProblem } {
  try {
    return { ok: true, table: parse(text) as Record<string, unknown> };
  } catch (error) {
    if (error instanceof TomlError) {
      const firstLine = error.message.split("\n")[0] ?? "";
      const reason = firstLine.replace(/^Invalid TOML document:\s*/, "").trim() || "syntax error";
      return { ok: false, problem: { line: error.line, column: error.column, reason } };
    }
    if (error instanceof RangeError) {
      // The parser recurses per nesting level: a hostile file nests until the stack ends.
      return {
        ok: false,
        problem: { line: 1, column: 1, reason: "tables or arrays nest too deeply" },
      };
    }
    throw error;
  }
}

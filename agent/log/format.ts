/**
 * Turning a log record into one line of text: journal (`<N>` priority prefix, for
 * stderr connected to journald), text (for a terminal), or JSON (for machines).
 *
 * @module
 */

import { type Level, PRIORITY } from "./level.ts";

/** A value of a structured log field. */
export type FieldValue = string | number | boolean | null | undefined;

/** Structured fields of a record (attempt id, phase, unit, device, …). */
export type Fields = Readonly<Record<string, FieldValue>>;

/** One thing logged. */
export interface LogRecord {
  time: Date;
  level: Level;
  message: string;
  fields: Fields;
}

/** The line formats. */
export type LogFormat = "text" | "journal" | "json";

function renderFields(fields: Fields): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = String(value);
    parts.push(/^[^\s"=]+$/.test(text) ? `${key}=${text}` : `${key}=${JSON.stringify(text)}`);
  }
  return parts.join(" ");
}

function oneLine(message: string): string {
  return message.replace(/\r?\n/g, " ⏎ ");
}

const COLORS: Partial<Record<Level, string>> = {
  warning: "\x1b[33m",
  error: "\x1b[31m",
  debug: "\x1b[2m",
};

/**
 * Formats a record as one line (with its trailing newline). `color` adds ANSI
 * colours to text lines for a terminal.
 */
export function formatRecord(record: LogRecord, format: LogFormat, color = false): string {
  const message = oneLine(record.message);
  const fields = renderFields(record.fields);
  switch (format) {
    case "journal":
      return `<${PRIORITY[record.level]}>${message}${fields ? ` (${fields})` : ""}\n`;
    case "json":
      return JSON.stringify({
        ...Object.fromEntries(Object.entries(record.fields).filter(([, v]) => v !== undefined)),
        time: record.time.toISOString(),
        level: record.level,
        priority: PRIORITY[record.level],
        message: record.message,
      }) + "\n";
    case "text": {
      const label = record.level === "info" || record.level === "notice" ? "" : `${record.level}: `;
      const tail = fields ? `  ${fields}` : "";
      const start = color && COLORS[record.level] ? COLORS[record.level] : "";
      const end = start ? "\x1b[0m" : "";
      return `${start}${label}${message}${end}${color && tail ? `\x1b[2m${tail}\x1b[0m` : tail}\n`;
    }
  }
}

/**
 * The agent's logger: levels, structured fields, and one of three line formats.
 *
 * @module
 */

import type { Clock, Environment, Output } from "../host/mod.ts";
import { type Fields, formatRecord, type LogFormat } from "./format.ts";
import { type Level, passes } from "./level.ts";

/** Logs records with structured fields. */
export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  notice(message: string, fields?: Fields): void;
  warning(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  /** A logger that adds `fields` to every record (for example the attempt id). */
  with(fields: Fields): Logger;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  output: Output;
  clock: Pick<Clock, "now">;
  level: Level;
  format: LogFormat;
  /** Colour text lines (only for a terminal). */
  color?: boolean;
}

class StreamLogger implements Logger {
  constructor(private readonly options: LoggerOptions, private readonly bound: Fields) {}

  private log(level: Level, message: string, fields: Fields = {}): void {
    if (!passes(level, this.options.level)) return;
    const record = {
      time: this.options.clock.now(),
      level,
      message,
      fields: { ...this.bound, ...fields },
    };
    this.options.output.write(formatRecord(record, this.options.format, this.options.color));
  }

  debug(message: string, fields?: Fields): void {
    this.log("debug", message, fields);
  }
  info(message: string, fields?: Fields): void {
    this.log("info", message, fields);
  }
  notice(message: string, fields?: Fields): void {
    this.log("notice", message, fields);
  }
  warning(message: string, fields?: Fields): void {
    this.log("warning", message, fields);
  }
  error(message: string, fields?: Fields): void {
    this.log("error", message, fields);
  }
  with(fields: Fields): Logger {
    return new StreamLogger(this.options, { ...this.bound, ...fields });
  }
}

/** Creates a logger writing one line per record to `options.output`. */
export function createLogger(options: LoggerOptions): Logger {
  return new StreamLogger(options, {});
}

/**
 * Resolves the "auto" format: journal prefixes when stderr is connected to the
 * journal (`JOURNAL_STREAM` is set and stderr is not a terminal), text otherwise.
 * Reads the `JOURNAL_STREAM` environment variable.
 */
export function resolveFormat(
  format: LogFormat | "auto",
  env: Environment,
  stderr: Output,
): LogFormat {
  if (format !== "auto") return format;
  const journal = env.get("JOURNAL_STREAM");
  return journal && /^\d+:\d+$/.test(journal) && !stderr.isTerminal() ? "journal" : "text";
}

/** Whether text output should be coloured: a terminal, and `NO_COLOR` unset. */
export function wantsColor(env: Environment, stderr: Output): boolean {
  return stderr.isTerminal() && !env.get("NO_COLOR");
}

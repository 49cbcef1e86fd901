/**
 * The agent's logger: levels, structured fields, and one of three line formats.
 *
 * @module
 */

import type { Clock, Environment, Libc, Output } from "../host/mod.ts";
import { type EventName, EVENTS } from "./events.ts";
import { type Fields, formatRecord, type LogFormat, type LogRecord } from "./format.ts";
import { JOURNAL_SOCKET, sendToJournal } from "./journal_native.ts";
import { type Level, passes } from "./level.ts";

/** Logs records with structured fields. */
export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  notice(message: string, fields?: Fields): void;
  warning(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  /** Logs an event of a known kind at its level, with its MESSAGE_ID in the journal. */
  event(name: EventName, message: string, fields?: Fields): void;
  /** A logger that adds `fields` to every record (for example the attempt id). */
  with(fields: Fields): Logger;
}

/** Where records go. */
export interface LogSink {
  write(record: LogRecord): void;
}

/** A sink writing one formatted line per record to `output`. */
export function streamSink(output: Output, format: LogFormat, color = false): LogSink {
  return { write: (record) => output.write(formatRecord(record, format, color)) };
}

/**
 * A sink sending records to journald's native socket (structured fields,
 * MESSAGE_ID); when the journal cannot take a record, that record and every later
 * one go to `fallback` instead. Needs `--allow-ffi` and write on the socket.
 */
export function journalSink(libc: () => Libc, fallback: LogSink, socket?: string): LogSink {
  let broken = false;
  return {
    write(record) {
      if (!broken) {
        let problem: string | undefined;
        try {
          problem = sendToJournal(libc(), record, socket);
        } catch (error) {
          problem = error instanceof Error ? error.message : String(error);
        }
        if (problem === undefined) return;
        broken = true;
        fallback.write({
          time: record.time,
          level: "warning",
          message: `Cannot send to the journal's socket (${problem}); logging to standard ` +
            "error from now on.",
          fields: { socket: socket ?? JOURNAL_SOCKET },
        });
      }
      fallback.write(record);
    },
  };
}

/** Options of {@link createLogger}: a sink, or an output stream and a line format. */
export type LoggerOptions =
  & { clock: Pick<Clock, "now">; level: Level }
  & ({ sink: LogSink } | { output: Output; format: LogFormat; color?: boolean });

interface ResolvedOptions {
  sink: LogSink;
  clock: Pick<Clock, "now">;
  level: Level;
}

class SinkLogger implements Logger {
  constructor(private readonly options: ResolvedOptions, private readonly bound: Fields) {}

  private log(level: Level, message: string, fields: Fields = {}): void {
    if (!passes(level, this.options.level)) return;
    const record = {
      time: this.options.clock.now(),
      level,
      message,
      fields: { ...this.bound, ...fields },
    };
    this.options.sink.write(record);
  }

  event(name: EventName, message: string, fields: Fields = {}): void {
    this.log(EVENTS[name].level, message, { event: name, ...fields });
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
    return new SinkLogger(this.options, { ...this.bound, ...fields });
  }
}

/** Creates a logger writing every record that passes `options.level` to `options.sink`. */
export function createLogger(options: LoggerOptions): Logger {
  const sink = "sink" in options
    ? options.sink
    : streamSink(options.output, options.format, options.color ?? false);
  return new SinkLogger({ sink, clock: options.clock, level: options.level }, {});
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

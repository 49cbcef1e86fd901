/**
 * Log levels and their syslog priorities.
 *
 * @module
 */

/** The levels the agent logs at, lowest first. */
export const LEVELS = ["debug", "info", "notice", "warning", "error"] as const;

/** One of {@link LEVELS}. */
export type Level = typeof LEVELS[number];

/** The syslog priority of each level, as journald reads it from a `<N>` prefix. */
export const PRIORITY: Readonly<Record<Level, number>> = {
  error: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
};

/** Whether a record at `level` passes a logger whose minimum is `minimum`. */
export function passes(level: Level, minimum: Level): boolean {
  return PRIORITY[level] <= PRIORITY[minimum];
}

/**
 * Maintenance windows: weekly days, a start time and a length, in an IANA time
 * zone. A window opens at the wall-clock time `start` on each listed day and stays
 * open for `length` of elapsed time, so it may cross midnight (and, when longer
 * than a day, run into the next). On the day clocks are set forward, a start
 * time inside the skipped hour opens the window that much later (02:30 becomes
 * 03:30); on the day clocks are set back, it opens at the first 02:30. The window
 * gates the START of an update only: an update that began inside it runs to its
 * end.
 *
 * @module
 */

import { addDays, formatInZone, instantOf, wallTime } from "./zone.ts";

/** Day names as written in the configuration, by weekday number (0 = Sunday). */
export const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

/** The form of a day name in the configuration: "mon" or "monday", any case. */
export const DAY_PATTERN =
  /^(mon(day)?|tue(sday)?|wed(nesday)?|thu(rsday)?|fri(day)?|sat(urday)?|sun(day)?)$/i;

/** The form of a start time in the configuration: "HH:MM", 24-hour. */
export const TIME_PATTERN = /^([01]\d|2[0-3]):[0-5]\d$/;

/** A weekly maintenance window. */
export interface WindowSpec {
  /** Weekdays the window opens on, 0 (Sunday) to 6 (Saturday), sorted, no repeats. */
  days: readonly number[];
  /** Minutes after local midnight at which the window opens. */
  startMinutes: number;
  /** How long it stays open, in milliseconds. */
  lengthMs: number;
  /** The IANA time zone of `days` and `startMinutes`. */
  timeZone: string;
}

/** The window settings as the configuration holds them. */
export interface WindowConfig {
  readonly days: readonly string[];
  readonly start: string;
  readonly length: number;
  readonly time_zone: string;
}

/** Whether the window is open at an instant, and when it next opens or closes. */
export interface WindowStatus {
  /** True when no window is configured: updates may start at any time. */
  always: boolean;
  open: boolean;
  /** While closed: when the window next opens. */
  opensAt?: Date;
  /** While open: when the window closes (unset when it never does). */
  closesAt?: Date;
}

/** The weekday number of a configured day name ("Sat", "saturday" → 6). */
export function dayNumber(name: string): number {
  const index = DAY_NAMES.indexOf(name.slice(0, 3).toLowerCase() as typeof DAY_NAMES[number]);
  if (index < 0 || !DAY_PATTERN.test(name)) throw new RangeError(`Not a day name: "${name}"`);
  return index;
}

/** The window of the configuration, or undefined when no days are listed (no window). */
export function windowFromConfig(config: WindowConfig): WindowSpec | undefined {
  if (config.days.length === 0) return undefined;
  const [hours, minutes] = config.start.split(":").map(Number) as [number, number];
  return {
    days: [...new Set(config.days.map(dayNumber))].sort((a, b) => a - b),
    startMinutes: hours * 60 + minutes,
    lengthMs: config.length,
    timeZone: config.time_zone,
  };
}

const WEEK_MS = 7 * 86_400_000;

/** Every opening of the window from about `spanDays` days before `at` to as many after. */
function intervals(spec: WindowSpec, at: number, spanDays: number): [number, number][] {
  const today = wallTime(at, spec.timeZone);
  const result: [number, number][] = [];
  for (let offset = -spanDays; offset <= spanDays; offset++) {
    const date = addDays(today, offset);
    if (!spec.days.includes(date.weekday)) continue;
    const start = instantOf({
      ...date,
      hour: Math.floor(spec.startMinutes / 60),
      minute: spec.startMinutes % 60,
    }, spec.timeZone);
    result.push([start, start + spec.lengthMs]);
  }
  result.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const interval of result) {
    const last = merged.at(-1);
    if (last && interval[0] <= last[1]) last[1] = Math.max(last[1], interval[1]);
    else merged.push([...interval]);
  }
  return merged;
}

/** Whether the window is open at `now`, and when it next opens or closes. */
export function windowStatus(spec: WindowSpec | undefined, now: Date): WindowStatus {
  if (spec === undefined) return { always: true, open: true };
  const at = now.getTime();
  const spanDays = 8 + Math.ceil(spec.lengthMs / 86_400_000);
  const list = intervals(spec, at, spanDays);
  const current = list.find(([start, end]) => start <= at && at < end);
  if (current) {
    const never = spec.days.length === 7 && spec.lengthMs >= 86_400_000;
    return never ? { always: false, open: true } : {
      always: false,
      open: true,
      closesAt: new Date(current[1]),
    };
  }
  const next = list.find(([start]) => start > at);
  // A week always holds an opening of a window with at least one day.
  return { always: false, open: false, opensAt: new Date(next?.[0] ?? at + WEEK_MS) };
}

/** The window in words: "sat, sun 22:30 for 4h (Europe/Berlin)", or "any time". */
export function describeWindow(spec: WindowSpec | undefined): string {
  if (spec === undefined) return "any time (no maintenance window)";
  const days = spec.days.map((day) => DAY_NAMES[day]).join(", ");
  const hh = String(Math.floor(spec.startMinutes / 60)).padStart(2, "0");
  const mm = String(spec.startMinutes % 60).padStart(2, "0");
  const hours = spec.lengthMs / 3_600_000;
  const length = Number.isInteger(hours) ? `${hours}h` : `${Math.round(spec.lengthMs / 60_000)}min`;
  return `${days} ${hh}:${mm} for ${length} (${spec.timeZone})`;
}

/** An instant written in the window's time zone, for messages. */
export function formatWindowTime(spec: WindowSpec | undefined, at: Date): string {
  return spec === undefined ? at.toISOString() : formatInZone(at.getTime(), spec.timeZone);
}

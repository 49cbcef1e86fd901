/**
 * Wall-clock time in IANA time zones, through `Intl` only (Deno ships full ICU
 * data): the wall time of an instant, and the instant of a wall time, with the
 * same rule JavaScript's Temporal calls "compatible" for times a daylight-saving
 * change skips or repeats.
 *
 * @module
 */

/** The wall-clock fields of an instant in a time zone. */
export interface WallTime {
  year: number;
  /** 1 to 12. */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** 0 (Sunday) to 6 (Saturday). */
  weekday: number;
}

const DAY_MS = 86_400_000;
const WEEKDAYS: Readonly<Record<string, number>> = {
  Sun: 0,
  Mon: 1,
  Tue: 2,
  Wed: 3,
  Thu: 4,
  Fri: 5,
  Sat: 6,
};
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let format = formatters.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      weekday: "short",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(zone, format);
  }
  return format;
}

/** Whether `zone` names a time zone `Intl` knows ("Europe/Berlin", "UTC"). */
export function isTimeZone(zone: string): boolean {
  if (zone === "") return false;
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock time of the instant `ms` (milliseconds since the epoch) in `zone`. */
export function wallTime(ms: number, zone: string): WallTime {
  const parts: Record<string, string> = {};
  for (const part of formatter(zone).formatToParts(ms)) parts[part.type] = part.value;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    weekday: WEEKDAYS[parts.weekday!] ?? 0,
  };
}

/** The offset of `zone` from UTC at the instant `ms`, in milliseconds (Berlin in winter: 3600000). */
export function offsetAt(ms: number, zone: string): number {
  const wall = wallTime(ms, zone);
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** A calendar date and a time of day, as a wall clock shows them. */
export interface LocalDateTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
}

/**
 * The instant (milliseconds since the epoch) at which clocks in `zone` show `local`.
 * A time that occurs twice (clocks set back) resolves to its first occurrence; a
 * time that does not occur (clocks set forward) is moved forward by the length of
 * the gap (02:30 on a day that jumps from 02:00 to 03:00 becomes 03:30).
 */
export function instantOf(local: LocalDateTime, zone: string): number {
  const asUtc = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute);
  const before = offsetAt(asUtc - DAY_MS, zone);
  const after = offsetAt(asUtc + DAY_MS, zone);
  const matches = [...new Set([before, after])]
    .map((offset) => asUtc - offset)
    .filter((candidate) => {
      const wall = wallTime(candidate, zone);
      return wall.year === local.year && wall.month === local.month && wall.day === local.day &&
        wall.hour === local.hour && wall.minute === local.minute;
    })
    .sort((a, b) => a - b);
  return matches[0] ?? asUtc - before;
}

/** The calendar date `days` days after the given one (negative goes back). */
export function addDays(
  date: { year: number; month: number; day: number },
  days: number,
): { year: number; month: number; day: number; weekday: number } {
  const moved = new Date(Date.UTC(date.year, date.month - 1, date.day) + days * DAY_MS);
  return {
    year: moved.getUTCFullYear(),
    month: moved.getUTCMonth() + 1,
    day: moved.getUTCDate(),
    weekday: moved.getUTCDay(),
  };
}

/** Formats an instant as ISO 8601 with the zone's offset ("2026-03-29T03:30:00+02:00"). */
export function formatInZone(ms: number, zone: string): string {
  const wall = wallTime(ms, zone);
  const offset = Math.round(offsetAt(ms, zone) / 60_000);
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(wall.year, 4)}-${pad(wall.month)}-${pad(wall.day)}T${pad(wall.hour)}:` +
    `${pad(wall.minute)}:${pad(wall.second)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

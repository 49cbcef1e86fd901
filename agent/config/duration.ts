/**
 * Durations in configuration files, written the way systemd writes them
 * (`"90s"`, `"5min"`, `"1h 30min"`, `"250ms"`), or a bare number of seconds.
 *
 * @module
 */

const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  msec: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  d: 86_400_000,
};

const PART = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/;

/**
 * Parses a duration such as `"90s"`, `"1min 30s"` or `"250ms"` into milliseconds.
 * Returns `undefined` when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  let total = 0;
  const parts = trimmed.replace(/(\d)\s+([a-z])/g, "$1$2").split(/\s+/);
  for (const part of parts) {
    const match = PART.exec(part);
    if (!match) return undefined;
    const unit = UNITS[match[2]!];
    if (unit === undefined) return undefined;
    total += Number(match[1]) * unit;
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

/** Formats milliseconds as the shortest exact duration text (`90000` → `"90s"`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [["h", 3_600_000], ["min", 60_000], ["s", 1000]] as const) {
    if (rest >= size) {
      const count = Math.floor(rest / size);
      parts.push(`${count}${unit}`);
      rest -= count * size;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join(" ");
}

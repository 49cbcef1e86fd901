import assert from "node:assert/strict";
import {
  dayNumber,
  describeWindow,
  type WindowConfig,
  windowFromConfig,
  windowStatus,
} from "./window.ts";
import { formatInZone, instantOf, isTimeZone, offsetAt, wallTime } from "./zone.ts";

const HOUR = 3_600_000;

function spec(config: Partial<WindowConfig>) {
  const window = windowFromConfig({
    days: ["mon"],
    start: "00:00",
    length: HOUR,
    time_zone: "UTC",
    ...config,
  });
  assert.ok(window);
  return window;
}

function at(iso: string): Date {
  return new Date(iso);
}

function iso(date: Date | undefined): string | undefined {
  return date?.toISOString();
}

Deno.test("zone: wall time, offsets and time zone names", () => {
  assert.ok(isTimeZone("Europe/Berlin"));
  assert.ok(isTimeZone("UTC"));
  assert.ok(!isTimeZone("Mars/Olympus_Mons"));
  assert.ok(!isTimeZone(""));
  const summer = Date.parse("2026-07-01T12:00:00Z");
  assert.equal(offsetAt(summer, "Europe/Berlin"), 2 * HOUR);
  assert.equal(offsetAt(summer, "America/New_York"), -4 * HOUR);
  assert.equal(offsetAt(summer, "Asia/Kolkata"), 5.5 * HOUR);
  assert.deepEqual(wallTime(summer, "Asia/Kolkata"), {
    year: 2026,
    month: 7,
    day: 1,
    hour: 17,
    minute: 30,
    second: 0,
    weekday: 3,
  });
  assert.equal(formatInZone(summer, "America/New_York"), "2026-07-01T08:00:00-04:00");
});

Deno.test("zone: a skipped wall time moves forward by the gap, a repeated one takes the first", () => {
  // Europe/Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST; 2026-10-25 03:00 CEST back to 02:00 CET.
  const gap = instantOf({ year: 2026, month: 3, day: 29, hour: 2, minute: 30 }, "Europe/Berlin");
  assert.equal(new Date(gap).toISOString(), "2026-03-29T01:30:00.000Z");
  assert.equal(formatInZone(gap, "Europe/Berlin"), "2026-03-29T03:30:00+02:00");
  const twice = instantOf({ year: 2026, month: 10, day: 25, hour: 2, minute: 30 }, "Europe/Berlin");
  assert.equal(new Date(twice).toISOString(), "2026-10-25T00:30:00.000Z");
  const plain = instantOf({ year: 2026, month: 1, day: 15, hour: 9, minute: 5 }, "Asia/Kolkata");
  assert.equal(new Date(plain).toISOString(), "2026-01-15T03:35:00.000Z");
});

Deno.test("window: inside, before and after a window on one day (UTC)", () => {
  // 2026-11-30 is a Monday.
  const window = spec({ days: ["Mon"], start: "02:00", length: 3 * HOUR });
  const before = windowStatus(window, at("2026-11-30T01:59:59Z"));
  assert.deepEqual(before.open, false);
  assert.equal(iso(before.opensAt), "2026-11-30T02:00:00.000Z");
  const opening = windowStatus(window, at("2026-11-30T02:00:00Z"));
  assert.equal(opening.open, true);
  assert.equal(iso(opening.closesAt), "2026-11-30T05:00:00.000Z");
  assert.equal(windowStatus(window, at("2026-11-30T04:59:59.999Z")).open, true);
  const after = windowStatus(window, at("2026-11-30T05:00:00Z"));
  assert.equal(after.open, false);
  assert.equal(iso(after.opensAt), "2026-12-07T02:00:00.000Z", "next Monday");
  const tuesday = windowStatus(window, at("2026-12-01T03:00:00Z"));
  assert.equal(tuesday.open, false);
});

Deno.test("window: crossing midnight stays open into the next day", () => {
  // Friday 22:00 for 4h: open until Saturday 02:00. 2026-11-27 is a Friday.
  const window = spec({ days: ["friday"], start: "22:00", length: 4 * HOUR });
  assert.equal(windowStatus(window, at("2026-11-27T21:59:00Z")).open, false);
  const late = windowStatus(window, at("2026-11-27T23:30:00Z"));
  assert.equal(late.open, true);
  assert.equal(iso(late.closesAt), "2026-11-28T02:00:00.000Z");
  const saturday = windowStatus(window, at("2026-11-28T01:00:00Z"));
  assert.equal(saturday.open, true, "Saturday 01:00 belongs to Friday's window");
  const closed = windowStatus(window, at("2026-11-28T02:00:00Z"));
  assert.equal(closed.open, false);
  assert.equal(iso(closed.opensAt), "2026-12-04T22:00:00.000Z");
});

Deno.test("window: days and hours are those of the configured time zone", () => {
  // Saturday 23:30 for 1h in New York (EST, UTC-5) is Sunday 04:30-05:30 UTC.
  const window = spec({
    days: ["sat"],
    start: "23:30",
    length: HOUR,
    time_zone: "America/New_York",
  });
  const sundayUtc = windowStatus(window, at("2026-11-29T04:45:00Z"));
  assert.equal(sundayUtc.open, true, "a Sunday in UTC is still Saturday in New York");
  assert.equal(iso(sundayUtc.closesAt), "2026-11-29T05:30:00.000Z");
  const saturdayUtc = windowStatus(window, at("2026-11-28T23:45:00Z"));
  assert.equal(saturdayUtc.open, false, "Saturday 23:45 UTC is 18:45 in New York");
  assert.equal(iso(saturdayUtc.opensAt), "2026-11-29T04:30:00.000Z");
  // A half-hour zone: Monday 01:00 in Kolkata (UTC+5:30) is Sunday 19:30 UTC.
  const kolkata = spec({ days: ["mon"], start: "01:00", length: HOUR, time_zone: "Asia/Kolkata" });
  assert.equal(windowStatus(kolkata, at("2026-11-29T19:30:00Z")).open, true);
  assert.equal(windowStatus(kolkata, at("2026-11-29T19:29:59Z")).open, false);
});

Deno.test("window: spring-forward day opens a window inside the skipped hour an hour later", () => {
  // Europe/Berlin, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST.
  const window = spec({
    days: ["sun"],
    start: "02:30",
    length: HOUR,
    time_zone: "Europe/Berlin",
  });
  const before = windowStatus(window, at("2026-03-29T01:29:00Z"));
  assert.equal(before.open, false);
  assert.equal(iso(before.opensAt), "2026-03-29T01:30:00.000Z", "03:30 CEST");
  const open = windowStatus(window, at("2026-03-29T01:30:00Z"));
  assert.equal(open.open, true);
  assert.equal(iso(open.closesAt), "2026-03-29T02:30:00.000Z");
  // A window spanning the change lasts its length in elapsed time: 01:00 CET + 3h = 05:00 CEST.
  const spanning = spec({
    days: ["sun"],
    start: "01:00",
    length: 3 * HOUR,
    time_zone: "Europe/Berlin",
  });
  const inside = windowStatus(spanning, at("2026-03-29T00:00:00Z"));
  assert.equal(inside.open, true);
  assert.equal(iso(inside.closesAt), "2026-03-29T03:00:00.000Z");
  // The Sunday before (CET) and after (CEST) open at their own offsets.
  assert.equal(
    iso(windowStatus(window, at("2026-03-22T00:00:00Z")).opensAt),
    "2026-03-22T01:30:00.000Z",
  );
  assert.equal(
    iso(windowStatus(window, at("2026-04-04T00:00:00Z")).opensAt),
    "2026-04-05T00:30:00.000Z",
  );
});

Deno.test("window: fall-back day opens at the first of the repeated times, once", () => {
  // Europe/Berlin, Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
  const window = spec({
    days: ["sun"],
    start: "02:30",
    length: 30 * 60_000,
    time_zone: "Europe/Berlin",
  });
  const first = windowStatus(window, at("2026-10-25T00:30:00Z"));
  assert.equal(first.open, true, "02:30 CEST");
  assert.equal(iso(first.closesAt), "2026-10-25T01:00:00.000Z");
  const second = windowStatus(window, at("2026-10-25T01:30:00Z"));
  assert.equal(second.open, false, "the second 02:30 (CET) does not reopen it");
  assert.equal(iso(second.opensAt), "2026-11-01T01:30:00.000Z");
  // US rules differ: New York falls back on 2026-11-01, 02:00 EDT -> 01:00 EST.
  const ny = spec({
    days: ["sun"],
    start: "01:15",
    length: 2 * HOUR,
    time_zone: "America/New_York",
  });
  const opened = windowStatus(ny, at("2026-11-01T05:15:00Z"));
  assert.equal(opened.open, true, "01:15 EDT is 05:15 UTC");
  assert.equal(iso(opened.closesAt), "2026-11-01T07:15:00.000Z");
});

Deno.test("window: several days, long windows and no window", () => {
  const weekend = spec({ days: ["sat", "sun", "sat"], start: "00:00", length: 48 * HOUR });
  assert.deepEqual(weekend.days, [0, 6]);
  const sunday = windowStatus(weekend, at("2026-11-29T23:00:00Z"));
  assert.equal(sunday.open, true);
  assert.equal(iso(sunday.closesAt), "2026-12-01T00:00:00.000Z", "Sunday's window runs 48h");
  const always = spec({
    days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    start: "00:00",
    length: 24 * HOUR,
  });
  const status = windowStatus(always, at("2026-11-30T12:00:00Z"));
  assert.equal(status.open, true);
  assert.equal(status.closesAt, undefined);
  assert.deepEqual(windowStatus(undefined, at("2026-11-30T12:00:00Z")), {
    always: true,
    open: true,
  });
  assert.equal(
    windowFromConfig({ days: [], start: "00:00", length: HOUR, time_zone: "UTC" }),
    undefined,
  );
});

Deno.test("window: descriptions and day names", () => {
  assert.equal(dayNumber("Sunday"), 0);
  assert.equal(dayNumber("SAT"), 6);
  assert.throws(() => dayNumber("someday"), RangeError);
  assert.equal(
    describeWindow(spec({
      days: ["sun", "sat"],
      start: "22:30",
      length: 4 * HOUR,
      time_zone: "Europe/Berlin",
    })),
    "sun, sat 22:30 for 4h (Europe/Berlin)",
  );
  assert.equal(describeWindow(spec({ length: 90 * 60_000 })), "mon 00:00 for 90min (UTC)");
  assert.match(describeWindow(undefined), /^any time/);
});

/**
 * The guest's records, as tests/e2e/guest/lib.sh writes them to the
 * `org.liveupdate.e2e.events` virtio-serial port: one per line,
 *
 *     KIND <tab> BOOT <tab> NAME <tab> VALUE
 *
 * with KIND one of boot, step, value, check, reboot, verdict. The host stamps
 * each line with the time it arrived.
 *
 * @module
 */

/** The kinds of record the guest writes. */
export const EVENT_KINDS = ["boot", "step", "value", "check", "reboot", "verdict"] as const;

/** One record from the guest. */
export interface GuestEvent {
  kind: (typeof EVENT_KINDS)[number];
  /** The boot it was written in (1 is the first). */
  boot: number;
  name: string;
  value: string;
  /** Milliseconds after the VM started when the host read it. */
  at: number;
}

/** A line the host could not read as a record. */
export class ChannelError extends Error {
  override name = "ChannelError";
}

/** Parses one line of the channel. */
export function parseEvent(line: string, at: number): GuestEvent {
  const fields = line.replace(/\r$/, "").split("\t");
  const [kind, boot, name, ...rest] = fields;
  if (
    !EVENT_KINDS.includes(kind as GuestEvent["kind"]) || !/^\d+$/.test(boot ?? "") ||
    name === undefined
  ) {
    throw new ChannelError(`Unreadable record from the guest: ${JSON.stringify(line)}`);
  }
  return { kind: kind as GuestEvent["kind"], boot: Number(boot), name, value: rest.join("\t"), at };
}

/**
 * Splits newly read channel text into complete lines, keeping an unfinished
 * last line for the next read.
 */
export class LineReader {
  #pending = "";

  /** Returns the complete lines in `chunk` (after what earlier chunks left). */
  push(chunk: string): string[] {
    const text = this.#pending + chunk;
    const lines = text.split("\n");
    this.#pending = lines.pop() ?? "";
    return lines.filter((line) => line.trim() !== "");
  }
}

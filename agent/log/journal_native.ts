/**
 * journald's native protocol: each record as one datagram of fields, so the
 * journal keeps MESSAGE_ID, PRIORITY and the agent's structured fields
 * (LIVEUPDATE_ATTEMPT, LIVEUPDATE_PHASE, LIVEUPDATE_UNIT, LIVEUPDATE_DEVICE, …).
 * A record about a unit also carries OBJECT_SYSTEMD_UNIT, so
 * `journalctl -u vmm.service` shows what the agent did to vmm.service.
 *
 * @module
 */

import type { Libc } from "../host/libc.ts";
import { sendDatagram } from "../host/unix_datagram.ts";
import { type EventKind, EVENTS } from "./events.ts";
import type { LogRecord } from "./format.ts";
import { PRIORITY } from "./level.ts";

/** journald's native socket. */
export const JOURNAL_SOCKET = "/run/systemd/journal/socket";

const encoder = new TextEncoder();

/** The journal field name of a record field ("exit_code" → "LIVEUPDATE_EXIT_CODE"). */
export function journalFieldName(key: string): string {
  return `LIVEUPDATE_${key.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}`;
}

function field(name: string, value: string): Uint8Array {
  if (!value.includes("\n")) return encoder.encode(`${name}=${value}\n`);
  const body = encoder.encode(value);
  const out = new Uint8Array(name.length + 1 + 8 + body.length + 1);
  out.set(encoder.encode(`${name}\n`));
  new DataView(out.buffer).setBigUint64(name.length + 1, BigInt(body.length), true);
  out.set(body, name.length + 9);
  out[out.length - 1] = 10;
  return out;
}

/** Encodes a record in journald's native format. */
export function encodeJournalRecord(
  record: LogRecord,
  identifier = "liveupdate-agent",
): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [
    field("MESSAGE", record.message),
    field("PRIORITY", String(PRIORITY[record.level])),
    field("SYSLOG_IDENTIFIER", identifier),
  ];
  for (const [key, value] of Object.entries(record.fields)) {
    if (value === undefined || value === null) continue;
    if (key === "event") {
      const kind = (EVENTS as Record<string, EventKind>)[String(value)];
      if (kind) parts.push(field("MESSAGE_ID", kind.id));
    }
    if (key === "unit") parts.push(field("OBJECT_SYSTEMD_UNIT", String(value)));
    parts.push(field(journalFieldName(key), String(value)));
  }
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Decodes journald's native format (plain `NAME=value` lines and length-prefixed
 * binary-safe fields) back into fields; for tests and tools that read what the
 * agent sends. A later field of the same name wins.
 */
export function decodeJournalRecord(bytes: Uint8Array): Record<string, string> {
  const fields: Record<string, string> = {};
  const decoder = new TextDecoder();
  let offset = 0;
  while (offset < bytes.length) {
    const newline = bytes.indexOf(10, offset);
    if (newline < 0) throw new RangeError("A journal field does not end in a newline");
    const line = decoder.decode(bytes.subarray(offset, newline));
    const equals = line.indexOf("=");
    if (equals >= 0) {
      fields[line.slice(0, equals)] = line.slice(equals + 1);
      offset = newline + 1;
      continue;
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const length = Number(view.getBigUint64(newline + 1, true));
    fields[line] = decoder.decode(bytes.subarray(newline + 9, newline + 9 + length));
    offset = newline + 9 + length + 1;
  }
  return fields;
}

/**
 * Sends a record to journald. Returns undefined on success, or the errno name when
 * the journal cannot take it (the caller falls back to standard error).
 */
export function sendToJournal(
  libc: Libc,
  record: LogRecord,
  socket = JOURNAL_SOCKET,
): string | undefined {
  return sendDatagram(libc, socket, encodeJournalRecord(record));
}

/**
 * The session broker's wire protocol: newline-delimited JSON over a unix stream
 * socket, session fds passed with SCM_RIGHTS. It follows the luod client protocol
 * (googleprodkernel/luo-agent) where that one is unambiguous:
 *
 *   client → agent  {"cmd":"SUBSCRIBE","id":"vm-1"}
 *   agent  → client {"event":"START_PRESERVATION","id":"vm-1"}   + the session fd
 *   client → agent  {"cmd":"READY","id":"vm-1"}                  (files preserved)
 *   … kexec …
 *   client → agent  {"cmd":"CLAIM","id":"vm-1"}
 *   agent  → client {"event":"CLAIMED","id":"vm-1"}              + the session fd
 *
 * Additions (a luod client never sends them and never receives them unless it
 * asks): "ack": true on a command makes the agent confirm it (SUBSCRIBED, READY,
 * FINISHED); FINISH after a claim; CANCEL_PRESERVATION when an update is
 * abandoned; ERROR for every refused command; and the root-only control
 * commands PREPARE, ABORT and STATUS the update flow uses.
 *
 * @module
 */

/** Longest line accepted, in bytes (a line is one message). */
export const MAX_LINE = 64 * 1024;

/** Commands a client sends. */
export type ClientCommand =
  | { cmd: "SUBSCRIBE"; id: string; ack?: boolean }
  | { cmd: "READY"; id?: string; ack?: boolean }
  | { cmd: "CLAIM"; id: string }
  | { cmd: "FINISH"; id?: string; ack?: boolean }
  | { cmd: "PREPARE"; timeout_ms?: number }
  | { cmd: "ABORT"; reason?: string }
  | { cmd: "STATUS" };

/** Events the agent sends. */
export type AgentEvent =
  | { event: "SUBSCRIBED"; id: string }
  | { event: "START_PRESERVATION"; id: string }
  | { event: "READY"; id: string }
  | { event: "CANCEL_PRESERVATION"; id: string; reason: string }
  | { event: "CLAIMED"; id: string }
  | { event: "FINISHED"; id: string }
  | { event: "PREPARED"; sessions: string[] }
  | { event: "ABORTED"; reason: string; clients: ClientProblem[] }
  | { event: "STATUS"; status: unknown }
  | { event: "ERROR"; cmd?: string; id?: string; errno?: string; message: string };

/** Why a client held up preparation. */
export interface ClientProblem {
  id: string;
  problem: "not-ready" | "disconnected" | "unreachable" | "kernel-refused";
  detail: string;
}

/** Events that carry a session fd. */
export const EVENTS_WITH_FD: ReadonlySet<string> = new Set(["START_PRESERVATION", "CLAIMED"]);

/** A message that could not be understood; the text says why. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

function text(value: unknown, field: string, cmd: string): string {
  if (typeof value !== "string") {
    throw new ProtocolError(`${cmd} needs "${field}" as a string`);
  }
  return value;
}

function optionalText(value: unknown, field: string, cmd: string): string | undefined {
  return value === undefined ? undefined : text(value, field, cmd);
}

function optionalFlag(value: unknown, field: string, cmd: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") {
    throw new ProtocolError(`${cmd}: "${field}" must be true or false`);
  }
  return value;
}

/** Parses one line from a client. Throws ProtocolError with what is wrong. */
export function parseCommand(line: string): ClientCommand {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ProtocolError(`Not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("A message must be a JSON object");
  }
  const message = value as Record<string, unknown>;
  const cmd = message.cmd;
  switch (cmd) {
    case "SUBSCRIBE":
      return {
        cmd,
        id: text(message.id, "id", cmd),
        ack: optionalFlag(message.ack, "ack", cmd),
      };
    case "READY":
    case "FINISH":
      return {
        cmd,
        id: optionalText(message.id, "id", cmd),
        ack: optionalFlag(message.ack, "ack", cmd),
      };
    case "CLAIM":
      return { cmd, id: text(message.id, "id", cmd) };
    case "PREPARE": {
      const timeout = message.timeout_ms;
      if (
        timeout !== undefined &&
        (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 0)
      ) {
        throw new ProtocolError('PREPARE: "timeout_ms" must be a whole number of milliseconds');
      }
      return { cmd, timeout_ms: timeout as number | undefined };
    }
    case "ABORT":
      return { cmd, reason: optionalText(message.reason, "reason", cmd) };
    case "STATUS":
      return { cmd };
    default:
      throw new ProtocolError(
        `Unknown command ${JSON.stringify(cmd)} (known: SUBSCRIBE, READY, CLAIM, FINISH, ` +
          "PREPARE, ABORT, STATUS)",
      );
  }
}

/** Parses one line from the agent (for clients). Throws ProtocolError. */
export function parseEvent(line: string): AgentEvent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ProtocolError(`Not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  if (
    typeof value !== "object" || value === null ||
    typeof (value as { event?: unknown }).event !== "string"
  ) {
    throw new ProtocolError('An agent message must be a JSON object with an "event"');
  }
  return value as AgentEvent;
}

/** One message as bytes on the wire. */
export function encodeMessage(message: AgentEvent | ClientCommand): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify(message) + "\n");
}

/**
 * Splits a byte stream into lines, keeping fds in arrival order: SCM_RIGHTS
 * fds arrive with the bytes of the message they belong to, and only the
 * messages in {@link EVENTS_WITH_FD} carry one, so the reader hands them out
 * first in, first out.
 */
export class LineReader {
  #pending = "";
  readonly #decoder = new TextDecoder();
  readonly fds: number[] = [];

  /** Adds received bytes and fds; returns the complete lines now available. */
  push(data: Uint8Array, fds: readonly number[] = []): string[] {
    this.fds.push(...fds);
    this.#pending += this.#decoder.decode(data, { stream: true });
    const lines: string[] = [];
    let newline;
    while ((newline = this.#pending.indexOf("\n")) >= 0) {
      const line = this.#pending.slice(0, newline).trim();
      this.#pending = this.#pending.slice(newline + 1);
      if (line) lines.push(line);
    }
    if (this.#pending.length > MAX_LINE) {
      throw new ProtocolError(`A message is longer than ${MAX_LINE} bytes`);
    }
    return lines;
  }
}

/**
 * The client side of the session broker, for TypeScript clients (the example
 * client, tests) and for the update flow's control requests (PREPARE, ABORT,
 * STATUS). Clients in other languages speak the protocol of protocol.ts
 * directly.
 *
 * @module
 */

import type { Libc } from "../host/libc.ts";
import { Session } from "../kernel/mainline/session.ts";
import type { BrokerStatus, PrepareResult } from "./broker.ts";
import {
  type AgentEvent,
  type ClientCommand,
  encodeMessage,
  EVENTS_WITH_FD,
  LineReader,
  parseEvent,
} from "./protocol.ts";
import { closeFds, connectUnix, type UnixConnection } from "./unix_socket.ts";

/** An event from the broker, with the session fd it carried (if any). */
export type ReceivedEvent = AgentEvent & { fd?: number };

/** The broker refused a command (an ERROR event), or the connection ended. */
export class BrokerRequestError extends Error {
  override name = "BrokerRequestError";
  constructor(message: string, readonly errno?: string) {
    super(message);
  }
}

/** A connection to the session broker. */
export class BrokerClient {
  readonly #libc: Libc;
  readonly #connection: UnixConnection;
  readonly #reader = new LineReader();
  readonly #queue: ReceivedEvent[] = [];
  #ended = false;

  private constructor(libc: Libc, connection: UnixConnection) {
    this.#libc = libc;
    this.#connection = connection;
  }

  /** Connects to the broker's socket. Throws SocketError. Needs --allow-ffi. */
  static connect(libc: Libc, socketPath: string): BrokerClient {
    return new BrokerClient(libc, connectUnix(libc, socketPath));
  }

  /** Sends one command. */
  async send(command: ClientCommand): Promise<void> {
    await this.#connection.send(encodeMessage(command));
  }

  /**
   * The next event (waiting for it); null when the broker closed the connection.
   * An event that carries a session fd has it in `fd`; the caller owns it.
   */
  async next(): Promise<ReceivedEvent | null> {
    while (this.#queue.length === 0) {
      if (this.#ended) return null;
      const received = await this.#connection.receive();
      if (!received) {
        this.#ended = true;
        closeFds(this.#libc, this.#reader.fds.splice(0));
        return null;
      }
      for (const line of this.#reader.push(received.data, received.fds)) {
        const event: ReceivedEvent = parseEvent(line);
        if (EVENTS_WITH_FD.has(event.event)) event.fd = this.#reader.fds.shift();
        this.#queue.push(event);
      }
    }
    return this.#queue.shift()!;
  }

  /** Waits for an event named `name`; an ERROR event or the end throws BrokerRequestError. */
  async expect<N extends AgentEvent["event"]>(
    name: N,
  ): Promise<Extract<AgentEvent, { event: N }> & { fd?: number }> {
    const event = await this.next();
    if (!event) {
      throw new BrokerRequestError(`The broker closed the connection (waiting for ${name})`);
    }
    if (event.event === name) return event as Extract<AgentEvent, { event: N }> & { fd?: number };
    if (event.fd !== undefined) this.#libc.symbols.close(event.fd);
    if (event.event === "ERROR") throw new BrokerRequestError(event.message, event.errno);
    throw new BrokerRequestError(`Expected ${name} from the broker, got ${event.event}`);
  }

  /** Subscribes for the next update as session `id`; waits for the broker's confirmation. */
  async subscribe(id: string): Promise<void> {
    await this.send({ cmd: "SUBSCRIBE", id, ack: true });
    await this.expect("SUBSCRIBED");
  }

  /**
   * Waits until the broker asks this client to preserve (START_PRESERVATION) and
   * returns the outgoing session to preserve files into. Close it after READY.
   */
  async preservation(id: string): Promise<Session> {
    const event = await this.expect("START_PRESERVATION");
    if (event.fd === undefined) {
      throw new BrokerRequestError("START_PRESERVATION came without a session fd");
    }
    return new Session(this.#libc, event.fd, id, "outgoing");
  }

  /** Tells the broker every file is preserved; waits for the confirmation. */
  async ready(id: string): Promise<void> {
    await this.send({ cmd: "READY", id, ack: true });
    await this.expect("READY");
  }

  /** After the update: claims session `id` and returns it (incoming). */
  async claim(id: string): Promise<Session> {
    await this.send({ cmd: "CLAIM", id });
    const event = await this.expect("CLAIMED");
    if (event.fd === undefined) throw new BrokerRequestError("CLAIMED came without a session fd");
    return new Session(this.#libc, event.fd, id, "incoming");
  }

  /** Tells the broker the claimed session `id` is restored; the broker finishes it. */
  async finish(id: string): Promise<void> {
    await this.send({ cmd: "FINISH", id, ack: true });
    await this.expect("FINISHED");
  }

  /** Closes the connection (and any fds received but not taken). */
  async close(): Promise<void> {
    for (const event of this.#queue.splice(0)) {
      if (event.fd !== undefined) this.#libc.symbols.close(event.fd);
    }
    closeFds(this.#libc, this.#reader.fds.splice(0));
    await this.#connection.close();
  }
}

async function control<T>(
  libc: Libc,
  socketPath: string,
  command: ClientCommand,
  answer: (event: ReceivedEvent) => T | undefined,
): Promise<T> {
  const client = BrokerClient.connect(libc, socketPath);
  try {
    await client.send(command);
    while (true) {
      const event = await client.next();
      if (!event) throw new BrokerRequestError("The session broker closed the connection");
      if (event.event === "ERROR") throw new BrokerRequestError(event.message, event.errno);
      const result = answer(event);
      if (result !== undefined) return result;
    }
  } finally {
    await client.close();
  }
}

/**
 * The update flow's barrier: asks the broker at `socketPath` to hand every
 * subscribed client its session and wait up to `timeout` ms for all of them.
 * Resolves with what happened (never throws for a client's failure; throws
 * SocketError/BrokerRequestError when the broker cannot be asked).
 */
export function prepareSessions(
  libc: Libc,
  socketPath: string,
  timeout?: number,
): Promise<PrepareResult> {
  return control(
    libc,
    socketPath,
    { cmd: "PREPARE", ...(timeout === undefined ? {} : { timeout_ms: timeout }) },
    (event): PrepareResult | undefined => {
      if (event.event === "PREPARED") return { ok: true, sessions: event.sessions };
      if (event.event === "ABORTED") {
        return { ok: false, reason: event.reason, clients: event.clients };
      }
      return undefined;
    },
  );
}

/** Rolls back a preparation: the broker closes every session (unpreserving them). */
export function abortSessions(libc: Libc, socketPath: string, reason: string): Promise<void> {
  return control(
    libc,
    socketPath,
    { cmd: "ABORT", reason },
    (event) => event.event === "ABORTED" ? true : undefined,
  ).then(() => undefined);
}

/** The broker's state. */
export function sessionsStatus(libc: Libc, socketPath: string): Promise<BrokerStatus> {
  return control(
    libc,
    socketPath,
    { cmd: "STATUS" },
    (event) => event.event === "STATUS" ? event.status as BrokerStatus : undefined,
  );
}

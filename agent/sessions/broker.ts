/**
 * The session broker: hands live-update sessions to client services (VMMs,
 * databases) and holds them across the kexec.
 *
 * Before an update, clients SUBSCRIBE with a session name. {@link
 * SessionBroker.prepare} (the update flow's barrier, also reachable as the
 * PREPARE control command) creates one outgoing session per subscriber, sends
 * each client its session fd (START_PRESERVATION), and waits until every client
 * has preserved its files and said READY — or aborts: the broker closes its
 * session fds and tells the clients to close theirs (CANCEL_PRESERVATION), which
 * unpreserves everything. Once prepared, the broker keeps its own reference to
 * every session until reboot(2) serializes them, so its process must outlive
 * systemd's shutdown (see units/liveupdate-sessions.service).
 *
 * After the kexec, the broker of the new boot reads its record, retrieves every
 * recorded session, and hands each to the client that CLAIMs it by name;
 * sessions nobody claims within `claimTimeout` are finished (their files are
 * dropped) and reported. Everything is written to the record.
 *
 * @module
 */

import type { Clock } from "../host/host.ts";
import { failed, type KernelFs } from "../host/kernel_fs.ts";
import type { Libc } from "../host/libc.ts";
import type { LiveupdateDevice } from "../kernel/mainline/device.ts";
import { LiveupdateError } from "../kernel/mainline/errors.ts";
import type { Session } from "../kernel/mainline/session.ts";
import { sessionNameProblem } from "../kernel/mainline/abi.ts";
import type { Logger } from "../log/mod.ts";
import {
  type AgentEvent,
  type ClientCommand,
  type ClientProblem,
  encodeMessage,
  LineReader,
  parseCommand,
  ProtocolError,
} from "./protocol.ts";
import {
  readRecord,
  type RecordedSession,
  removeRecord,
  type SessionOutcome,
  type SessionRecord,
  writeRecord,
} from "./record.ts";
import { closeFds, type UnixConnection, UnixListener } from "./unix_socket.ts";

/** Options of {@link SessionBroker.start}. */
export interface BrokerOptions {
  libc: Libc;
  /** The live-update device (a stand-in in tests: only the LUO kernel itself is faked). */
  device: Pick<LiveupdateDevice, "use" | "retrieveSession">;
  clock: Clock;
  log: Logger;
  /** The kernel's files (procfs: who still holds a session), libc in production. */
  fs: KernelFs;
  /** Root of procfs (`paths.proc`). */
  proc: string;
  /** The socket clients connect to (mode 0600: root only). */
  socketPath: string;
  /** Where the record lives (`paths.state_dir`). */
  stateDir: string;
  /** How long preparation waits for every client's READY, by default (ms). */
  readyTimeout: number;
  /** How long after start unclaimed incoming sessions wait before being finished (ms). */
  claimTimeout: number;
  /** This boot's id (/proc/sys/kernel/random/boot_id). */
  bootId: string;
  /** The kernel's outgoing liveupdate number (from debugfs), for the record; null if unknown. */
  liveupdateNumber: () => Promise<number | null>;
}

/** What {@link SessionBroker.prepare} achieved. */
export type PrepareResult =
  | { ok: true; sessions: string[] }
  | { ok: false; reason: string; clients: ClientProblem[] };

/** The broker's state, for `status` and the STATUS command. */
export interface BrokerStatus {
  phase: "idle" | "preparing" | "prepared";
  socket: string;
  subscribers: { id: string; pid: number; state: SubscriberState }[];
  incoming: { name: string; outcome: SessionOutcome; detail?: string }[];
}

type SubscriberState = "subscribed" | "preserving" | "ready";

interface Client {
  connection: UnixConnection;
  pid: number;
  uid: number;
  /** The id this client subscribed with, if it did. */
  subscription?: Subscriber;
  /** Incoming sessions this client claimed and has not finished. */
  claims: Set<string>;
}

interface Subscriber {
  id: string;
  client: Client;
  state: SubscriberState;
  ack: boolean;
  /** The agent's own reference to the outgoing session, while preparing/prepared. */
  session?: Session;
  /** The client disconnected during preparation. */
  gone?: boolean;
}

interface Incoming {
  name: string;
  recorded: RecordedSession;
  session: Session | null;
  outcome: SessionOutcome;
  claimedBy?: Client;
}

/** The session broker. Create it with {@link SessionBroker.start}. */
export class SessionBroker {
  readonly #options: BrokerOptions;
  readonly #listener: UnixListener;
  readonly #clients = new Set<Client>();
  readonly #subscribers = new Map<string, Subscriber>();
  readonly #incoming = new Map<string, Incoming>();
  readonly #tasks = new Set<Promise<unknown>>();
  #record: SessionRecord | null = null;
  #phase: BrokerStatus["phase"] = "idle";
  #readyWaiter: (() => void) | undefined;
  #claimTimer: ReturnType<typeof setTimeout> | undefined;
  #closing = false;
  #saving: Promise<void> = Promise.resolve();

  private constructor(options: BrokerOptions, listener: UnixListener) {
    this.#options = options;
    this.#listener = listener;
  }

  /**
   * Takes over the sessions a previous kernel handed over (per the record),
   * starts listening, and serves clients until {@link close}. Needs read+write
   * on the device, the socket's folder and the state directory, and --allow-ffi.
   */
  static async start(options: BrokerOptions): Promise<SessionBroker> {
    const listener = UnixListener.listen(options.libc, options.socketPath, 0o600);
    const broker = new SessionBroker(options, listener);
    try {
      await broker.#takeOverIncoming();
    } catch (error) {
      await listener.close();
      throw error;
    }
    broker.#track(broker.#acceptLoop());
    return broker;
  }

  #track(task: Promise<unknown>): void {
    const tracked = task.catch((error) =>
      this.#options.log.error(`Session broker task failed: ${error}`)
    ).finally(() => this.#tasks.delete(tracked));
    this.#tasks.add(tracked);
  }

  /** The broker's state. */
  status(): BrokerStatus {
    return {
      phase: this.#phase,
      socket: this.#options.socketPath,
      subscribers: [...this.#subscribers.values()].map((s) => ({
        id: s.id,
        pid: s.client.pid,
        state: s.state,
      })),
      incoming: [...this.#incoming.values()].map((i) => ({
        name: i.name,
        outcome: i.outcome,
        ...(i.recorded.detail ? { detail: i.recorded.detail } : {}),
      })),
    };
  }

  // ---------------------------------------------------------------- incoming

  async #takeOverIncoming(): Promise<void> {
    const { log, stateDir, bootId } = this.#options;
    const record = await readRecord(stateDir);
    if (!record || record.phase === "done") return;
    if (record.preparedBootId === bootId && record.phase === "prepared") {
      // Prepared in this very boot: the broker that held the sessions died, and
      // with its fds the kernel unpreserved them.
      log.error(
        "The sessions prepared in this boot were lost: the session broker that held them " +
          "stopped before the kexec. Clients must subscribe again.",
        { sessions: record.sessions.map((s) => s.name).join(",") },
      );
      await removeRecord(stateDir);
      return;
    }
    this.#record = record;
    const now = this.#options.clock.now().toISOString();
    if (record.phase === "prepared") {
      record.phase = "restoring";
      record.restoredBootId = bootId;
      record.restoredAt = now;
    }
    // Did this kernel take the previous one's live-update state over at all? Its
    // outgoing liveupdate number is one more than the one it took over.
    const current = await this.#options.liveupdateNumber().catch(() => null);
    const expected = record.liveupdateNumber === null ? null : record.liveupdateNumber + 1;
    const handedOver = current === null || expected === null || current === expected;
    for (const recorded of record.sessions) {
      let outcome = recorded.outcome ?? "waiting";
      if (outcome === "claimed") outcome = "waiting";
      if (outcome === "waiting" && !handedOver) {
        outcome = "lost";
        recorded.detail = `this kernel did not take over the previous kernel's live-update ` +
          `state (its liveupdate number is ${current}, ${expected} was expected): a cold boot, ` +
          "a kernel loaded with kexec_load (kexec without -s), or a target without " +
          '"kho=on liveupdate=on"';
        recorded.settledAt = now;
        log.error(`Session "${recorded.name}" did not survive the update: ${recorded.detail}.`, {
          session: recorded.name,
        });
      }
      recorded.outcome = outcome;
      // Retrieved lazily (at CLAIM or when the claim time is up): a retrieved
      // session is finished by the kernel when its last fd closes, so holding it
      // early would lose it if this process restarted.
      this.#incoming.set(recorded.name, { name: recorded.name, recorded, session: null, outcome });
    }
    await this.#saveIncoming();
    const waiting = [...this.#incoming.values()].filter((i) => i.outcome === "waiting");
    if (waiting.length > 0) {
      log.info(
        `${waiting.length} session(s) from the previous kernel wait for their clients to claim ` +
          `them within ${this.#options.claimTimeout} ms.`,
        { sessions: waiting.map((i) => i.name).join(",") },
      );
      this.#claimTimer = setTimeout(() => {
        this.#claimTimer = undefined;
        this.#track(this.#finishUnclaimed());
      }, this.#options.claimTimeout);
    }
  }

  /** Retrieves an incoming session from the kernel if not yet done; false when lost. */
  async #retrieve(incoming: Incoming): Promise<boolean> {
    if (incoming.session) return true;
    try {
      incoming.session = await this.#options.device.retrieveSession(incoming.name);
      return true;
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      this.#settle(incoming, "lost", detail);
      this.#options.log.error(`Session "${incoming.name}" did not survive the update: ${detail}`, {
        session: incoming.name,
      });
      return false;
    }
  }

  async #finishUnclaimed(): Promise<void> {
    for (const incoming of this.#incoming.values()) {
      if (incoming.outcome !== "waiting") continue;
      if (!await this.#retrieve(incoming) || !incoming.session) continue;
      let detail = "nobody claimed it in time; its files were dropped";
      try {
        incoming.session.finish();
      } catch (error) {
        detail += ` (finish failed: ${error instanceof Error ? error.message : error})`;
      }
      incoming.session.close();
      incoming.session = null;
      this.#settle(incoming, "finished-unclaimed", detail);
      this.#options.log.warning(
        `Session "${incoming.name}" was not claimed within ${this.#options.claimTimeout} ms; ` +
          "finished it, its preserved files are gone.",
        { session: incoming.name },
      );
    }
    await this.#saveIncoming();
  }

  #settle(incoming: Incoming, outcome: SessionOutcome, detail?: string): void {
    incoming.outcome = outcome;
    incoming.recorded.outcome = outcome;
    if (detail) incoming.recorded.detail = detail;
    incoming.recorded.settledAt = this.#options.clock.now().toISOString();
  }

  /** Writes the record; writes are queued so they land in order. */
  #saveIncoming(): Promise<void> {
    const write = this.#saving.then(() => this.#writeIncoming());
    this.#saving = write.catch(() => undefined);
    return write;
  }

  async #writeIncoming(): Promise<void> {
    const record = this.#record;
    if (!record) return;
    const open = [...this.#incoming.values()].some((i) =>
      i.outcome === "waiting" || i.outcome === "claimed"
    );
    record.phase = open ? "restoring" : "done";
    await writeRecord(this.#options.stateDir, record);
    if (!open) {
      this.#options.log.notice("Every session from the previous kernel is settled.", {
        outcomes: record.sessions.map((s) => `${s.name}=${s.outcome}`).join(","),
      });
    }
  }

  // ----------------------------------------------------------------- clients

  async #acceptLoop(): Promise<void> {
    while (!this.#closing) {
      const connection = await this.#listener.accept();
      if (!connection) return;
      let peer;
      try {
        peer = connection.peer();
      } catch {
        await connection.close();
        continue;
      }
      const client: Client = { connection, pid: peer.pid, uid: peer.uid, claims: new Set() };
      if (peer.uid !== 0) {
        await this.#send(client, {
          event: "ERROR",
          message: "Only root may use the live-update session socket.",
        });
        await connection.close();
        continue;
      }
      this.#clients.add(client);
      this.#track(this.#serve(client));
    }
  }

  async #serve(client: Client): Promise<void> {
    const reader = new LineReader();
    try {
      while (!this.#closing) {
        const received = await client.connection.receive();
        if (!received) break;
        let lines: string[];
        try {
          lines = reader.push(received.data, received.fds);
        } catch (error) {
          await this.#send(client, { event: "ERROR", message: String(error) });
          break;
        }
        // Clients send no fds; close any they did.
        closeFds(this.#options.libc, reader.fds.splice(0));
        for (const line of lines) {
          let command: ClientCommand;
          try {
            command = parseCommand(line);
          } catch (error) {
            const message = error instanceof ProtocolError ? error.message : String(error);
            await this.#send(client, { event: "ERROR", message });
            continue;
          }
          try {
            await this.#handle(client, command);
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            this.#options.log.error(`${command.cmd} from pid ${client.pid} failed: ${message}`);
            await this.#send(client, {
              event: "ERROR",
              cmd: command.cmd,
              ...(error instanceof LiveupdateError ? { errno: error.errno } : {}),
              message,
            });
          }
        }
      }
    } finally {
      await this.#disconnected(client);
    }
  }

  async #send(client: Client, event: AgentEvent, fds: number[] = []): Promise<boolean> {
    try {
      await client.connection.send(encodeMessage(event), fds);
      return true;
    } catch {
      return false;
    }
  }

  async #refuse(client: Client, command: ClientCommand, message: string, errno?: string) {
    await this.#send(client, {
      event: "ERROR",
      cmd: command.cmd,
      ...("id" in command && command.id ? { id: command.id } : {}),
      ...(errno ? { errno } : {}),
      message,
    });
  }

  async #handle(client: Client, command: ClientCommand): Promise<void> {
    switch (command.cmd) {
      case "SUBSCRIBE":
        return this.#subscribe(client, command);
      case "READY":
        return this.#ready(client, command);
      case "CLAIM":
        return this.#claim(client, command);
      case "FINISH":
        return this.#finish(client, command);
      case "PREPARE": {
        const result = await this.prepare(command.timeout_ms);
        await this.#send(
          client,
          result.ok
            ? { event: "PREPARED", sessions: result.sessions }
            : { event: "ABORTED", reason: result.reason, clients: result.clients },
        );
        return;
      }
      case "ABORT": {
        const result = await this.abort(command.reason ?? "aborted by request");
        await this.#send(client, { event: "ABORTED", reason: result.reason, clients: [] });
        return;
      }
      case "STATUS":
        await this.#send(client, { event: "STATUS", status: this.status() });
        return;
    }
  }

  async #subscribe(client: Client, command: { cmd: "SUBSCRIBE"; id: string; ack?: boolean }) {
    const problem = sessionNameProblem(command.id);
    if (problem) {
      return this.#refuse(
        client,
        command,
        `The id ${JSON.stringify(command.id)} cannot name a session: ${problem}.`,
        "EINVAL",
      );
    }
    if (client.subscription) {
      return this.#refuse(
        client,
        command,
        `This connection already subscribed as "${client.subscription.id}"; use one connection ` +
          "per session.",
      );
    }
    if (this.#subscribers.has(command.id)) {
      const holder = this.#subscribers.get(command.id)!;
      return this.#refuse(
        client,
        command,
        `The id "${command.id}" is taken by the client with pid ${holder.client.pid}.`,
        "EEXIST",
      );
    }
    if (this.#phase !== "idle") {
      return this.#refuse(
        client,
        command,
        `An update is being prepared (${this.#phase}); subscribe again after it.`,
        "EBUSY",
      );
    }
    const subscriber: Subscriber = {
      id: command.id,
      client,
      state: "subscribed",
      ack: command.ack === true,
    };
    client.subscription = subscriber;
    this.#subscribers.set(command.id, subscriber);
    this.#options.log.info(`Client pid ${client.pid} subscribed as "${command.id}".`, {
      session: command.id,
    });
    if (subscriber.ack) await this.#send(client, { event: "SUBSCRIBED", id: command.id });
  }

  async #ready(client: Client, command: { cmd: "READY"; id?: string; ack?: boolean }) {
    const subscriber = client.subscription;
    if (!subscriber || (command.id !== undefined && command.id !== subscriber.id)) {
      return this.#refuse(
        client,
        command,
        "READY without a matching SUBSCRIBE on this connection.",
      );
    }
    if (subscriber.state !== "preserving") {
      return this.#refuse(
        client,
        command,
        `READY came while "${subscriber.id}" was ${subscriber.state}, not preserving.`,
      );
    }
    subscriber.state = "ready";
    this.#options.log.info(`Client "${subscriber.id}" preserved its files.`, {
      session: subscriber.id,
    });
    if (subscriber.ack || command.ack) {
      await this.#send(client, { event: "READY", id: subscriber.id });
    }
    this.#readyWaiter?.();
  }

  async #claim(client: Client, command: { cmd: "CLAIM"; id: string }) {
    let incoming = this.#incoming.get(command.id);
    if (!incoming) {
      // Not in the record (for example a lost record): the kernel may still have it.
      try {
        const session = await this.#options.device.retrieveSession(command.id);
        incoming = {
          name: command.id,
          recorded: { name: command.id, client: { pid: 0, uid: 0 }, outcome: "waiting" },
          session,
          outcome: "waiting",
        };
        this.#incoming.set(command.id, incoming);
        this.#record?.sessions.push(incoming.recorded);
      } catch (error) {
        const errno = error instanceof LiveupdateError ? error.errno : undefined;
        return this.#refuse(
          client,
          command,
          error instanceof Error ? error.message : String(error),
          errno,
        );
      }
    }
    if (incoming.outcome === "waiting" && !await this.#retrieve(incoming)) {
      await this.#saveIncoming();
    }
    switch (incoming.outcome) {
      case "lost":
        return this.#refuse(
          client,
          command,
          `Session "${command.id}" did not survive the update: ${incoming.recorded.detail ?? ""}`,
          "ENOENT",
        );
      case "finished":
      case "finished-unclaimed":
        return this.#refuse(
          client,
          command,
          `Session "${command.id}" is already finished (${incoming.outcome}).`,
          "ENOENT",
        );
      case "claimed":
        if (incoming.claimedBy !== client) {
          return this.#refuse(
            client,
            command,
            `Session "${command.id}" is claimed by the client with pid ${incoming.claimedBy?.pid}.`,
            "EBUSY",
          );
        }
    }
    const sent = await this.#send(client, { event: "CLAIMED", id: command.id }, [
      incoming.session!.fd,
    ]);
    if (!sent) return;
    incoming.outcome = "claimed";
    incoming.recorded.outcome = "claimed";
    incoming.claimedBy = client;
    client.claims.add(command.id);
    this.#options.log.info(`Client pid ${client.pid} claimed session "${command.id}".`, {
      session: command.id,
    });
    await this.#saveIncoming();
  }

  async #finish(client: Client, command: { cmd: "FINISH"; id?: string; ack?: boolean }) {
    const names = command.id === undefined ? [...client.claims] : [command.id];
    if (names.length === 0 || names.some((name) => !client.claims.has(name))) {
      return this.#refuse(client, command, "FINISH for a session this connection has not claimed.");
    }
    for (const name of names) {
      const incoming = this.#incoming.get(name)!;
      try {
        incoming.session?.finish();
      } catch (error) {
        const errno = error instanceof LiveupdateError ? error.errno : undefined;
        await this.#refuse(client, command, String(error), errno);
        continue;
      }
      incoming.session?.close();
      incoming.session = null;
      client.claims.delete(name);
      incoming.claimedBy = undefined;
      this.#settle(incoming, "finished");
      this.#options.log.info(`Session "${name}" finished by its client.`, { session: name });
      if (command.ack) await this.#send(client, { event: "FINISHED", id: name });
    }
    await this.#saveIncoming();
  }

  async #disconnected(client: Client): Promise<void> {
    this.#clients.delete(client);
    await client.connection.close();
    for (const name of client.claims) {
      // Claimed but not finished: keep it for another claim (the agent still holds it).
      const incoming = this.#incoming.get(name);
      if (incoming && incoming.outcome === "claimed") {
        incoming.outcome = "waiting";
        incoming.recorded.outcome = "waiting";
        incoming.claimedBy = undefined;
        this.#options.log.warning(
          `The client of session "${name}" went away before FINISH; the session waits for ` +
            "another claim.",
          { session: name },
        );
      }
    }
    if (client.claims.size > 0 && !this.#closing) await this.#saveIncoming();
    const subscriber = client.subscription;
    if (!subscriber) return;
    if (this.#phase !== "idle" && subscriber.state === "ready") {
      // Its session is preserved and held by the broker; nothing is lost (a
      // client may well exit once it said READY).
      this.#options.log.info(
        `Client "${subscriber.id}" disconnected after preparing; the broker holds its session ` +
          "until the kexec.",
        { session: subscriber.id },
      );
      return;
    }
    this.#subscribers.delete(subscriber.id);
    if (this.#phase === "preparing") {
      subscriber.state = "subscribed";
      subscriber.gone = true;
      this.#readyWaiter?.();
    }
  }

  // ------------------------------------------------------------------ barrier

  /**
   * The barrier the update flow calls before the kexec: creates a session per
   * subscriber, hands each its fd, and waits up to `timeout` ms (default
   * `readyTimeout`) for every READY. On success the broker holds every session
   * and has written the record; on failure it has aborted (nothing preserved,
   * clients told) and says which clients held it up.
   */
  async prepare(timeout = this.#options.readyTimeout): Promise<PrepareResult> {
    const { log, device, clock } = this.#options;
    if (this.#phase !== "idle") {
      return { ok: false, reason: `An update is already ${this.#phase}.`, clients: [] };
    }
    this.#phase = "preparing";
    const subscribers = [...this.#subscribers.values()];
    log.info(`Preparing ${subscribers.length} session(s).`, {
      sessions: subscribers.map((s) => s.id).join(","),
    });
    // Create every session in one open of the device.
    try {
      await device.use((open) => {
        for (const subscriber of subscribers) {
          subscriber.session = open.createSession(subscriber.id);
          subscriber.state = "preserving";
        }
      });
    } catch (error) {
      const failed = subscribers.find((s) => !s.session);
      return this.#abortWith(
        `The kernel refused a session: ${error instanceof Error ? error.message : error}`,
        failed ? [{ id: failed.id, problem: "kernel-refused", detail: String(error) }] : [],
      );
    }
    const problems: ClientProblem[] = [];
    for (const subscriber of subscribers) {
      const sent = await this.#send(
        subscriber.client,
        { event: "START_PRESERVATION", id: subscriber.id },
        [subscriber.session!.fd],
      );
      if (!sent) {
        problems.push({
          id: subscriber.id,
          problem: "unreachable",
          detail: "its connection failed when the session fd was sent",
        });
      }
    }
    if (problems.length > 0) return this.#abortWith("A client could not be reached.", problems);
    // Wait for every READY, a disconnect, or the timeout.
    const deadline = clock.monotonic() + timeout;
    while (true) {
      const gone = subscribers.filter((s) => s.gone);
      if (gone.length > 0) {
        return this.#abortWith(
          "A client disconnected before it was ready.",
          gone.map((s) => ({
            id: s.id,
            problem: "disconnected" as const,
            detail: `the client (pid ${s.client.pid}) closed its connection before READY`,
          })),
        );
      }
      const waiting = subscribers.filter((s) => s.state !== "ready");
      if (waiting.length === 0) break;
      const left = deadline - clock.monotonic();
      if (left <= 0) {
        return this.#abortWith(
          `${waiting.length} client(s) did not report READY within ${timeout} ms.`,
          waiting.map((s) => ({
            id: s.id,
            problem: "not-ready" as const,
            detail: `pid ${s.client.pid} got its session but never said READY`,
          })),
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#readyWaiter = undefined;
          resolve();
        }, left);
        this.#readyWaiter = () => {
          clearTimeout(timer);
          this.#readyWaiter = undefined;
          resolve();
        };
      });
    }
    const record: SessionRecord = {
      version: 1,
      phase: "prepared",
      preparedBootId: this.#options.bootId,
      preparedAt: clock.now().toISOString(),
      liveupdateNumber: await this.#options.liveupdateNumber().catch(() => null),
      sessions: subscribers.map((s) => ({
        name: s.id,
        client: { pid: s.client.pid, uid: s.client.uid },
      })),
    };
    try {
      await writeRecord(this.#options.stateDir, record);
    } catch (error) {
      return this.#abortWith(
        `Cannot record the sessions, so the next boot could not find them: ${error}`,
        [],
      );
    }
    this.#phase = "prepared";
    const names = subscribers.map((s) => s.id);
    log.notice(`Every client is ready; holding ${names.length} session(s) until the kexec.`, {
      sessions: names.join(","),
    });
    return { ok: true, sessions: names };
  }

  async #abortWith(reason: string, clients: ClientProblem[]): Promise<PrepareResult> {
    await this.abort(reason);
    return { ok: false, reason, clients };
  }

  /**
   * Abandons a preparation (or a prepared update that will not happen): closes
   * the broker's session fds and tells every client to close its own, which
   * unpreserves the files. Clients still holding their copy keep their session
   * preserved until they close it; they are named in the log.
   */
  async abort(reason: string): Promise<{ reason: string }> {
    const { log } = this.#options;
    for (const subscriber of this.#subscribers.values()) {
      if (!subscriber.session) continue;
      subscriber.session.close();
      subscriber.session = undefined;
      subscriber.state = "subscribed";
      await this.#send(subscriber.client, {
        event: "CANCEL_PRESERVATION",
        id: subscriber.id,
        reason,
      });
      const holders = sessionHolders(this.#options.fs, this.#options.proc, subscriber.id);
      if (holders.length > 0) {
        log.warning(
          `Session "${subscriber.id}" stays preserved while process(es) ${holders.join(", ")} ` +
            "hold it; they must close their session fd.",
          { session: subscriber.id },
        );
      }
    }
    if (this.#phase !== "idle") {
      log.warning(`Preparation aborted: ${reason}`);
      await removeRecord(this.#options.stateDir).catch(() => undefined);
    }
    // Clients that left after READY are not subscribed any more.
    for (const [id, subscriber] of this.#subscribers) {
      if (!subscriber.client.connection.open) this.#subscribers.delete(id);
    }
    this.#phase = "idle";
    return { reason };
  }

  /**
   * Stops serving: closes the socket and every connection. Outgoing sessions
   * are closed too (unpreserved) — in production the broker never gets here
   * before a kexec; reboot(2) ends it holding them. Incoming sessions it has
   * retrieved (claimed, not finished) are finished by the kernel as their fds
   * close; those not retrieved yet stay in the kernel for a restarted broker.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#claimTimer !== undefined) clearTimeout(this.#claimTimer);
    this.#readyWaiter?.();
    await this.#listener.close();
    for (const client of [...this.#clients]) await client.connection.close();
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
    for (const subscriber of this.#subscribers.values()) subscriber.session?.close();
    for (const incoming of this.#incoming.values()) incoming.session?.close();
  }
}

/**
 * Pids of processes that hold the session `name` open (from `<proc>/PID/fd`, read
 * through the kernel's files: Deno refuses /proc under the agent's permissions).
 */
export function sessionHolders(fs: KernelFs, proc: string, name: string): number[] {
  const target = `anon_inode:[luo_session] ${name}`;
  const holders: number[] = [];
  const processes = fs.readDir(proc);
  if (failed(processes)) return holders;
  for (const entry of processes) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    const fds = fs.readDir(`${proc}/${entry.name}/fd`);
    // Gone, or not ours to read.
    if (failed(fds)) continue;
    for (const fd of fds) {
      if (fs.readLink(`${proc}/${entry.name}/fd/${fd.name}`) === target) {
        holders.push(Number(entry.name));
        break;
      }
    }
  }
  return holders;
}

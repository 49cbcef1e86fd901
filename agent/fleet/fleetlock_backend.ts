/**
 * Slots on a FleetLock server: the HTTP protocol zincati speaks, served by
 * airlock (on etcd) and by fleetlock (on Kubernetes). `POST <url>/v1/pre-reboot`
 * takes a slot and `POST <url>/v1/steady-state` frees it, each with the header
 * `fleet-lock-protocol: true` and the body `{"client_params":{"id","group"}}`;
 * 200 means done, anything else failed, with a `{"kind","value"}` body. Both
 * calls are idempotent (a holder may lock and unlock again).
 *
 * FleetLock locks have no lease: a slot is permanent from the moment it is
 * taken, so a host that dies mid-update always keeps it (the operator frees it
 * on the server, or with `liveupdate-agent fleet release`, which sends the
 * unlock for the given id). The server decides the slot counts and groups, and
 * the protocol cannot list holders.
 *
 * @module
 */

import type {
  BackendHold,
  FleetBackend,
  OperatorReleaseResult,
  PersistChange,
  SlotRecord,
  SlotRequest,
  TryAcquireResult,
} from "./backend.ts";
import type { DecisionValue } from "./decision.ts";
import { FleetBackendError } from "./fleet_error.ts";
import { type JsonAnswer, postJson } from "./http.ts";

/** Options of {@link FleetLockBackend}. */
export interface FleetLockBackendOptions {
  /** The server's base URL. */
  url: string;
  requestTimeoutMs: number;
  /** The HTTP client (TLS settings); the backend closes it. */
  httpClient: Deno.HttpClient;
  now: () => Date;
}

/** A FleetLock error body. */
interface FleetLockFailure {
  kind: string;
  value: string;
}

/** Error kinds (and statuses) that mean "the slots are taken; try later". */
const BUSY_KIND = /semaphore_full|full|held|locked|busy|conflict/i;
const BUSY_STATUS = new Set([409, 423, 429]);
/** Statuses that mean the request itself is wrong: retrying cannot help. */
const FATAL_STATUS = new Set([400, 401, 403, 404, 405]);

function failureOf(answer: JsonAnswer): FleetLockFailure {
  const body = answer.body;
  if (typeof body === "object" && body !== null) {
    const { kind, value } = body as Record<string, unknown>;
    if (typeof kind === "string" && kind !== "") {
      return { kind, value: typeof value === "string" && value !== "" ? value : kind };
    }
  }
  return { kind: `http_${answer.status}`, value: answer.text.trim() || `HTTP ${answer.status}` };
}

/** Takes and frees slots on a FleetLock server. */
export class FleetLockBackend implements FleetBackend {
  readonly name = "fleetlock";
  readonly #options: FleetLockBackendOptions;
  readonly #base: string;

  constructor(options: FleetLockBackendOptions) {
    this.#options = options;
    this.#base = options.url.replace(/\/+$/, "");
  }

  get description(): string {
    return `FleetLock ${this.#base}`;
  }

  close(): void {
    this.#options.httpClient.close();
  }

  /** Sends one protocol call; returns the answer. */
  async call(
    operation: "pre-reboot" | "steady-state",
    id: string,
    group: string,
    signal?: AbortSignal,
  ): Promise<JsonAnswer> {
    return await postJson(`${this.#base}/v1/${operation}`, { client_params: { id, group } }, {
      client: this.#options.httpClient,
      timeoutMs: this.#options.requestTimeoutMs,
      headers: { "fleet-lock-protocol": "true" },
      signal,
    });
  }

  /** Turns a failed answer into the error to throw. */
  #error(operation: string, answer: JsonAnswer, failure: FleetLockFailure): FleetBackendError {
    const endpoint = `${this.#base}/v1/${operation}`;
    const text = `FleetLock server ${endpoint} answered HTTP ${answer.status} ` +
      `(${failure.kind}): ${failure.value}.`;
    if (FATAL_STATUS.has(answer.status)) {
      return new FleetBackendError(
        `${text} Check fleet.fleetlock.url and fleet.group (letters, digits, '.' and '-').`,
        { endpoint, status: answer.status, kind: failure.kind, retryable: false },
      );
    }
    return new FleetBackendError(text, { endpoint, status: answer.status, kind: failure.kind });
  }

  async tryAcquire(request: SlotRequest, signal?: AbortSignal): Promise<TryAcquireResult> {
    const answer = await this.call("pre-reboot", request.id, request.group, signal);
    if (answer.status === 200) {
      return {
        granted: true,
        hold: new FleetLockHold(this, request, this.#options.now().toISOString()),
        fields: { url: this.#base, status: 200 },
      };
    }
    const failure = failureOf(answer);
    if (BUSY_STATUS.has(answer.status) || BUSY_KIND.test(failure.kind)) {
      return {
        granted: false,
        reason: "full",
        message: `The FleetLock server has no free slot for group "${request.group}": ` +
          `${failure.value} (${failure.kind}).`,
        holders: [],
        fields: { status: answer.status, kind: failure.kind },
      };
    }
    throw this.#error("pre-reboot", answer, failure);
  }

  /** Releases the lock of `id` in `group` (idempotent); throws on failure. */
  async unlock(
    id: string,
    group: string,
    signal?: AbortSignal,
  ): Promise<Record<string, DecisionValue>> {
    const answer = await this.call("steady-state", id, group, signal);
    if (answer.status !== 200) throw this.#error("steady-state", answer, failureOf(answer));
    return { url: this.#base, status: 200 };
  }

  resume(request: SlotRequest): Promise<BackendHold> {
    return Promise.resolve(new FleetLockHold(this, request, this.#options.now().toISOString()));
  }

  halt(): Promise<boolean> {
    return Promise.resolve(false);
  }

  list(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  async operatorRelease(
    who: string,
    group: string,
    _options: { force: boolean },
    signal?: AbortSignal,
  ): Promise<OperatorReleaseResult> {
    await this.unlock(who, group, signal);
    return {
      released: [{ id: who, group, state: "unknown", lease_bound: false }],
      halts: [],
    };
  }
}

/** A slot held on a FleetLock server. Permanent from the start (no leases). */
class FleetLockHold implements BackendHold {
  readonly leaseBound = false;
  readonly lost: AbortSignal = new AbortController().signal;
  readonly #backend: FleetLockBackend;
  readonly #request: SlotRequest;
  readonly record: SlotRecord;

  constructor(backend: FleetLockBackend, request: SlotRequest, acquiredAt: string) {
    this.#backend = backend;
    this.#request = request;
    this.record = {
      backend: "fleetlock",
      id: request.id,
      group: request.group,
      acquired_at: acquiredAt,
      url: backend.description.replace(/^FleetLock /, ""),
    };
  }

  persist(change: PersistChange): Promise<Record<string, DecisionValue>> {
    // The lock is already permanent; a failure keeps it simply by not unlocking.
    return Promise.resolve({
      stage: change.stage ?? null,
      note: "FleetLock locks are always permanent",
    });
  }

  async release(signal?: AbortSignal) {
    const fields = await this.#backend.unlock(this.#request.id, this.#request.group, signal);
    return { outcome: "released" as const, fields };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A small client of etcd v3's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`,
 * `/v3/lease/grant`, `/v3/lease/keepalive`, `/v3/lease/revoke`,
 * `/v3/auth/authenticate`) over HTTP(S) with `fetch`: keys and values as text
 * (sent base64-encoded as the gateway wants), 64-bit lease ids kept as decimal
 * strings, revisions as numbers. Endpoints are tried in order from the last one
 * that answered; an endpoint that cannot be reached, times out, or says it is
 * unavailable (no leader, leader changed, request timed out) makes the client
 * fail over to the next. With a user name, it authenticates lazily and again
 * when its token expires. Works with etcd 3.4 and later (the `/v3/` paths).
 * Needs `--allow-net` for the endpoints.
 *
 * Why not the npm client `etcd3`: it works under Deno, but speaks gRPC through
 * `@grpc/grpc-js` and `protobufjs` (about twenty packages, one with an install
 * script Deno skips), reads its `.proto` files from the npm cache at run time
 * (more read permissions), reads `GRPC_*` environment variables (more env
 * permissions), and keeps sockets and timers of its own. The agent needs five
 * calls; this file is them.
 *
 * @module
 */

import type { Logger } from "../log/mod.ts";
import { FleetBackendError } from "./fleet_error.ts";
import { type JsonAnswer, postJson } from "./http.ts";

/** A key as etcd stores it. */
export interface EtcdKeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** The lease the key is attached to, "0" when none. */
  lease: string;
}

/** How a compare relates the key's field to the given value. */
export type CompareResult = "equal" | "not-equal" | "greater" | "less";

/** One condition of a transaction, on one key or (with `rangeEnd`) every key of a range. */
export type EtcdCompare =
  & { key: string; rangeEnd?: string; result: CompareResult }
  & (
    | { target: "version"; version: number }
    | { target: "create"; createRevision: number }
    | { target: "mod"; modRevision: number }
    | { target: "value"; value: string }
    | { target: "lease"; lease: string }
  );

/** One operation of a transaction. */
export type EtcdOp =
  | { put: { key: string; value: string; lease?: string } }
  | { deleteRange: { key: string; rangeEnd?: string } }
  | { range: { key: string; rangeEnd?: string; limit?: number } };

/** The answer to one operation of a transaction. */
export type EtcdOpResult =
  | { kind: "range"; kvs: EtcdKeyValue[]; count: number }
  | { kind: "put" }
  | { kind: "delete"; deleted: number };

/** What a transaction did. */
export interface EtcdTxnResult {
  succeeded: boolean;
  /** The store's revision after the transaction. */
  revision: number;
  responses: EtcdOpResult[];
}

/** What a range read returned. */
export interface EtcdRangeResult {
  kvs: EtcdKeyValue[];
  count: number;
  /** The store's revision the read saw. */
  revision: number;
}

/** Options of {@link EtcdClient}. */
export interface EtcdClientOptions {
  /** Client URLs of the members ("https://10.0.0.1:2379"). */
  endpoints: readonly string[];
  requestTimeoutMs: number;
  /** The HTTP client (TLS settings); the etcd client closes it. */
  httpClient: Deno.HttpClient;
  /** A user and password: the client authenticates and sends the token. */
  credentials?: { username: string; password: string };
  log?: Logger;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function b64(text: string): string {
  return toBase64(encoder.encode(text));
}

function fromB64(text: unknown): string {
  if (typeof text !== "string" || text === "") return "";
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return decoder.decode(bytes);
}

/** The end of the range of every key starting with `prefix`. */
export function prefixEnd(prefix: string): string {
  const bytes = encoder.encode(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = bytes.slice(0, i + 1);
      end[i]! += 1;
      return decoder.decode(end);
    }
  }
  return "\0";
}

function num(value: unknown): number {
  if (value === undefined || value === null || value === "") return 0;
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function keyValue(raw: unknown): EtcdKeyValue {
  const kv = isObject(raw) ? raw : {};
  return {
    key: fromB64(kv.key),
    value: fromB64(kv.value),
    createRevision: num(kv.create_revision),
    modRevision: num(kv.mod_revision),
    version: num(kv.version),
    lease: kv.lease === undefined ? "0" : String(kv.lease),
  };
}

function revisionOf(body: Record<string, unknown>): number {
  return isObject(body.header) ? num(body.header.revision) : 0;
}

const COMPARE_RESULT: Readonly<Record<CompareResult, string>> = {
  equal: "EQUAL",
  "not-equal": "NOT_EQUAL",
  greater: "GREATER",
  less: "LESS",
};

function compareJson(compare: EtcdCompare): Record<string, unknown> {
  const json: Record<string, unknown> = {
    key: b64(compare.key),
    result: COMPARE_RESULT[compare.result],
  };
  if (compare.rangeEnd !== undefined) json.range_end = b64(compare.rangeEnd);
  switch (compare.target) {
    case "version":
      return { ...json, target: "VERSION", version: String(compare.version) };
    case "create":
      return { ...json, target: "CREATE", create_revision: String(compare.createRevision) };
    case "mod":
      return { ...json, target: "MOD", mod_revision: String(compare.modRevision) };
    case "value":
      return { ...json, target: "VALUE", value: b64(compare.value) };
    case "lease":
      return { ...json, target: "LEASE", lease: compare.lease };
  }
}

function opJson(op: EtcdOp): Record<string, unknown> {
  if ("put" in op) {
    const put: Record<string, unknown> = { key: b64(op.put.key), value: b64(op.put.value) };
    if (op.put.lease !== undefined && op.put.lease !== "0") put.lease = op.put.lease;
    return { request_put: put };
  }
  if ("deleteRange" in op) {
    const del: Record<string, unknown> = { key: b64(op.deleteRange.key) };
    if (op.deleteRange.rangeEnd !== undefined) del.range_end = b64(op.deleteRange.rangeEnd);
    return { request_delete_range: del };
  }
  const range: Record<string, unknown> = { key: b64(op.range.key) };
  if (op.range.rangeEnd !== undefined) range.range_end = b64(op.range.rangeEnd);
  if (op.range.limit !== undefined) range.limit = String(op.range.limit);
  return { request_range: range };
}

function opResult(raw: unknown): EtcdOpResult {
  const response = isObject(raw) ? raw : {};
  if (isObject(response.response_range)) {
    const range = response.response_range;
    const kvs = Array.isArray(range.kvs) ? range.kvs.map(keyValue) : [];
    return { kind: "range", kvs, count: num(range.count) };
  }
  if (isObject(response.response_delete_range)) {
    return { kind: "delete", deleted: num(response.response_delete_range.deleted) };
  }
  return { kind: "put" };
}

/** gRPC status codes etcd answers with, by number. */
const GRPC_CODES: Readonly<Record<number, string>> = {
  1: "Canceled",
  2: "Unknown",
  3: "InvalidArgument",
  4: "DeadlineExceeded",
  5: "NotFound",
  6: "AlreadyExists",
  7: "PermissionDenied",
  8: "ResourceExhausted",
  9: "FailedPrecondition",
  10: "Aborted",
  11: "OutOfRange",
  12: "Unimplemented",
  13: "Internal",
  14: "Unavailable",
  15: "DataLoss",
  16: "Unauthenticated",
};

/** Error kinds that stay the same until the configuration changes: not worth retrying. */
const FINAL_KINDS = new Set([
  "InvalidArgument",
  "PermissionDenied",
  "Unimplemented",
  "Unauthenticated",
]);

/** Error kinds that mean "this member cannot serve now; another may". */
const FAIL_OVER_KINDS = new Set([
  "timeout",
  "unreachable",
  "DeadlineExceeded",
  "ResourceExhausted",
  "Unavailable",
]);

interface EtcdFailure {
  code: number;
  message: string;
}

/** The error in an answer, if it is one. */
function failureOf(answer: JsonAnswer): EtcdFailure | undefined {
  const body = answer.body;
  if (isObject(body)) {
    const error = body.error;
    if (isObject(error)) {
      // A streaming call's error: {"error": {"grpc_code", "http_code", "message"}}.
      return { code: num(error.grpc_code), message: String(error.message ?? "error") };
    }
    if (typeof error === "string" || (answer.status !== 200 && "code" in body)) {
      return { code: num(body.code), message: String(body.message ?? error ?? "error") };
    }
  }
  if (answer.status !== 200) {
    const code = answer.status === 503
      ? 14
      : answer.status === 504
      ? 4
      : answer.status === 404
      ? 12
      : 2;
    return { code, message: `HTTP ${answer.status}: ${answer.text || "(no body)"}` };
  }
  if (!isObject(body)) {
    return { code: 2, message: `an answer that is not a JSON object: ${answer.text || "(empty)"}` };
  }
  return undefined;
}

/** A client of one etcd cluster. Close it when done. */
export class EtcdClient {
  readonly #endpoints: readonly string[];
  readonly #options: EtcdClientOptions;
  #current = 0;
  #token: string | undefined;
  #authDisabled = false;

  constructor(options: EtcdClientOptions) {
    if (options.endpoints.length === 0) throw new RangeError("EtcdClient needs an endpoint");
    this.#endpoints = options.endpoints.map((endpoint) => endpoint.replace(/\/+$/, ""));
    this.#options = options;
  }

  /** The endpoint that answered last (or is tried first). */
  get endpoint(): string {
    return this.#endpoints[this.#current]!;
  }

  /** Every endpoint, in the configured order. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Closes the HTTP client and its connections. */
  close(): void {
    this.#options.httpClient.close();
  }

  /** Reads one key, or (with `prefix`) every key under it, or a range. */
  async range(
    key: string,
    options: { prefix?: boolean; rangeEnd?: string; revision?: number; limit?: number } = {},
    signal?: AbortSignal,
  ): Promise<EtcdRangeResult> {
    const body: Record<string, unknown> = { key: b64(key) };
    const end = options.prefix ? prefixEnd(key) : options.rangeEnd;
    if (end !== undefined) body.range_end = b64(end);
    if (options.revision !== undefined) body.revision = String(options.revision);
    if (options.limit !== undefined) body.limit = String(options.limit);
    const answer = await this.#call("/v3/kv/range", body, signal);
    const kvs = Array.isArray(answer.kvs) ? answer.kvs.map(keyValue) : [];
    return { kvs, count: num(answer.count), revision: revisionOf(answer) };
  }

  /** Runs a transaction: if every compare holds, `success`, else `failure`. */
  async txn(
    compare: readonly EtcdCompare[],
    success: readonly EtcdOp[],
    failure: readonly EtcdOp[] = [],
    signal?: AbortSignal,
  ): Promise<EtcdTxnResult> {
    const answer = await this.#call("/v3/kv/txn", {
      compare: compare.map(compareJson),
      success: success.map(opJson),
      failure: failure.map(opJson),
    }, signal);
    return {
      succeeded: answer.succeeded === true,
      revision: revisionOf(answer),
      responses: Array.isArray(answer.responses) ? answer.responses.map(opResult) : [],
    };
  }

  /** Grants a lease of `ttlSeconds`; returns its id and the TTL etcd granted. */
  async grant(ttlSeconds: number, signal?: AbortSignal): Promise<{ id: string; ttl: number }> {
    const answer = await this.#call("/v3/lease/grant", { TTL: String(ttlSeconds) }, signal);
    if (answer.ID === undefined || answer.error) {
      throw new FleetBackendError(
        `etcd at ${this.endpoint} granted no lease: ${String(answer.error ?? "no lease id")}.`,
        { endpoint: this.endpoint },
      );
    }
    return { id: String(answer.ID), ttl: num(answer.TTL) };
  }

  /** Renews lease `id` once; returns its TTL in seconds, 0 when it has expired. */
  async keepAlive(id: string, signal?: AbortSignal): Promise<number> {
    const answer = await this.#call("/v3/lease/keepalive", { ID: id }, signal);
    const result = isObject(answer.result) ? answer.result : answer;
    return num(result.TTL);
  }

  /** Revokes lease `id` (deleting its keys); false when it no longer existed. */
  async revoke(id: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.#call("/v3/lease/revoke", { ID: id }, signal);
      return true;
    } catch (error) {
      if (error instanceof FleetBackendError && error.kind === "NotFound") return false;
      throw error;
    }
  }

  async #authenticate(index: number, signal?: AbortSignal): Promise<void> {
    const credentials = this.#options.credentials!;
    const endpoint = this.#endpoints[index]!;
    const answer = await postJson(`${endpoint}/v3/auth/authenticate`, {
      name: credentials.username,
      password: credentials.password,
    }, { client: this.#options.httpClient, timeoutMs: this.#options.requestTimeoutMs, signal });
    const failure = failureOf(answer);
    if (failure) {
      if (/authentication is not enabled/.test(failure.message)) {
        this.#authDisabled = true;
        this.#options.log?.warning(
          `etcd at ${endpoint} has authentication turned off; fleet.etcd.username is not used.`,
          { endpoint },
        );
        return;
      }
      if (FAIL_OVER_KINDS.has(GRPC_CODES[failure.code] ?? "")) {
        throw new FleetBackendError(
          `etcd at ${endpoint} cannot authenticate now: ${failure.message}.`,
          {
            endpoint,
            kind: GRPC_CODES[failure.code],
          },
        );
      }
      throw new FleetBackendError(
        `etcd at ${endpoint} rejected user "${credentials.username}": ${failure.message}. Check ` +
          "fleet.etcd.username and the password in fleet.etcd.password_file.",
        { endpoint, status: answer.status, kind: "auth", retryable: false },
      );
    }
    const token = isObject(answer.body) ? answer.body.token : undefined;
    if (typeof token !== "string" || token === "") {
      throw new FleetBackendError(`etcd at ${endpoint} answered authenticate without a token.`, {
        endpoint,
      });
    }
    this.#token = token;
  }

  async #call(
    path: string,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const count = this.#endpoints.length;
    const problems: string[] = [];
    let lastError: FleetBackendError | undefined;
    let reauthenticated = false;
    for (let attempt = 0; attempt < count; attempt++) {
      const index = (this.#current + attempt) % count;
      const endpoint = this.#endpoints[index]!;
      let answer: JsonAnswer;
      try {
        if (this.#options.credentials && this.#token === undefined && !this.#authDisabled) {
          await this.#authenticate(index, signal);
        }
        const headers: Record<string, string> = {};
        if (this.#token !== undefined) headers.authorization = this.#token;
        answer = await postJson(`${endpoint}${path}`, body, {
          client: this.#options.httpClient,
          timeoutMs: this.#options.requestTimeoutMs,
          headers,
          signal,
        });
      } catch (error) {
        if (!(error instanceof FleetBackendError) || !FAIL_OVER_KINDS.has(error.kind ?? "")) {
          throw error;
        }
        lastError = error;
        problems.push(error.message);
        this.#options.log?.debug(`etcd: ${error.message} Failing over.`, { endpoint });
        continue;
      }
      const failure = failureOf(answer);
      if (failure === undefined) {
        if (this.#current !== index) {
          this.#options.log?.info(`etcd: now using ${endpoint}.`, { endpoint });
          this.#current = index;
        }
        return answer.body as Record<string, unknown>;
      }
      const kind = GRPC_CODES[failure.code] ?? "Unknown";
      if (
        this.#options.credentials && !reauthenticated &&
        (failure.code === 16 || /invalid auth token/.test(failure.message))
      ) {
        // The token expired (or the member restarted): authenticate again, once.
        reauthenticated = true;
        this.#token = undefined;
        attempt--;
        continue;
      }
      if (FAIL_OVER_KINDS.has(kind)) {
        lastError = new FleetBackendError(
          `etcd at ${endpoint} cannot serve now: ${failure.message}.`,
          { endpoint, status: answer.status, kind },
        );
        problems.push(lastError.message);
        this.#options.log?.debug(`etcd: ${lastError.message} Failing over.`, { endpoint });
        continue;
      }
      if (failure.code === 7) {
        throw new FleetBackendError(
          `etcd at ${endpoint} refused ${path}: ${failure.message}. Give the etcd user ` +
            `"${this.#options.credentials?.username ?? "(none)"}" a role with readwrite ` +
            "permission on the fleet.etcd.prefix range.",
          { endpoint, status: answer.status, kind, retryable: false },
        );
      }
      const notEtcd = kind === "Unimplemented" ? " Is this an etcd v3.4+ client URL?" : "";
      throw new FleetBackendError(
        `etcd at ${endpoint} refused ${path}: ${failure.message}.${notEtcd}`,
        { endpoint, status: answer.status, kind, retryable: !FINAL_KINDS.has(kind) },
      );
    }
    throw new FleetBackendError(
      `No etcd endpoint could serve ${path}: ${problems.join(" ")} Check that the cluster ` +
        "has a leader and that this host can reach fleet.etcd.endpoints.",
      { endpoint: lastError?.endpoint ?? this.endpoint, kind: lastError?.kind ?? "unreachable" },
      { cause: lastError },
    );
  }
}

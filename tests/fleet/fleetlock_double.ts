/**
 * A FleetLock server for tests, built from the published protocol (zincati's
 * docs/development/fleetlock/protocol.md): `POST /v1/pre-reboot` locks a slot
 * of the client's group (recursive: a holder may lock again), `POST
 * /v1/steady-state` unlocks it if held; both need the header
 * `fleet-lock-protocol: true` and the body `{"client_params":{"id","group"}}`
 * (id non-empty, group matching `^[a-zA-Z0-9.-]+$`); 200 on success, otherwise a
 * 4xx/5xx status with a `{"kind","value"}` body. Serves on loopback (port picked
 * by the kernel), optionally over TLS; faults (error answers, hangs) can be
 * queued. Close it with `close()` (or `await using`).
 *
 * @module
 */

/** One request the double received. */
export interface SeenRequest {
  method: string;
  path: string;
  header: string | null;
  contentType: string | null;
  body: string;
}

/** A queued fault: the next matching request is answered with it. */
export interface Fault {
  /** Only for this operation; any when unset. */
  path?: "/v1/pre-reboot" | "/v1/steady-state";
  status?: number;
  /** The raw body to answer (JSON or not). */
  body?: string;
  /** Never answer (until the client gives up or the double closes). */
  hang?: boolean;
}

/** Options of {@link startFleetLock}. */
export interface FleetLockOptions {
  /** Slots per group; groups not listed have `defaultSlots`. */
  slots?: Record<string, number>;
  defaultSlots?: number;
  /** The status of "semaphore full" (servers differ; the protocol says any non-200). */
  fullStatus?: number;
  tls?: { cert: string; key: string };
}

/** A running FleetLock test server. */
export interface FleetLockDouble extends AsyncDisposable {
  url: string;
  /** Holders by group. */
  holders: Map<string, Set<string>>;
  requests: SeenRequest[];
  /** Queues faults, answered in order before normal service resumes. */
  fault(...faults: Fault[]): void;
  close(): Promise<void>;
}

const GROUP = /^[a-zA-Z0-9.-]+$/;

function error(status: number, kind: string, value: string): Response {
  return Response.json({ kind, value }, { status });
}

/** Starts a FleetLock test server on 127.0.0.1. */
export function startFleetLock(options: FleetLockOptions = {}): FleetLockDouble {
  const holders = new Map<string, Set<string>>();
  const requests: SeenRequest[] = [];
  const faults: Fault[] = [];
  const closing = new AbortController();

  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const body = await request.text();
    requests.push({
      method: request.method,
      path: url.pathname,
      header: request.headers.get("fleet-lock-protocol"),
      contentType: request.headers.get("content-type"),
      body,
    });
    const faultIndex = faults.findIndex((f) => f.path === undefined || f.path === url.pathname);
    if (faultIndex >= 0) {
      const [fault] = faults.splice(faultIndex, 1);
      if (fault!.hang) {
        await new Promise<void>((resolve) => {
          closing.signal.addEventListener("abort", () => resolve(), { once: true });
          request.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        return new Response(null, { status: 503 });
      }
      return new Response(fault!.body ?? "", {
        status: fault!.status ?? 500,
        headers: { "content-type": "application/json" },
      });
    }
    if (request.method !== "POST") return error(405, "method_not_allowed", "only POST is allowed");
    if (url.pathname !== "/v1/pre-reboot" && url.pathname !== "/v1/steady-state") {
      return error(404, "not_found", `no endpoint ${url.pathname}`);
    }
    if (request.headers.get("fleet-lock-protocol") !== "true") {
      return error(400, "missing_fleet_lock_header", "header fleet-lock-protocol must be true");
    }
    let params: { id?: unknown; group?: unknown };
    try {
      params = JSON.parse(body).client_params ?? {};
    } catch {
      return error(400, "bad_request", "body is not JSON");
    }
    if (typeof params.id !== "string" || params.id === "") {
      return error(400, "bad_request", "client_params.id must be a non-empty string");
    }
    if (typeof params.group !== "string" || !GROUP.test(params.group)) {
      return error(400, "bad_request", "client_params.group must match ^[a-zA-Z0-9.-]+$");
    }
    const group = holders.get(params.group) ?? new Set<string>();
    holders.set(params.group, group);
    if (url.pathname === "/v1/steady-state") {
      group.delete(params.id);
      return Response.json({});
    }
    if (group.has(params.id)) return Response.json({});
    const slots = options.slots?.[params.group] ?? options.defaultSlots ?? 1;
    if (group.size >= slots) {
      return error(
        options.fullStatus ?? 409,
        "failed_lock_semaphore_full",
        "semaphore currently full, all slots are locked already",
      );
    }
    group.add(params.id);
    return Response.json({});
  };

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    signal: closing.signal,
    ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}),
  }, handler);
  const scheme = options.tls ? "https" : "http";
  const double: FleetLockDouble = {
    url: `${scheme}://127.0.0.1:${server.addr.port}`,
    holders,
    requests,
    fault: (...more) => void faults.push(...more),
    async close() {
      closing.abort();
      await server.finished;
    },
    [Symbol.asyncDispose]() {
      return double.close();
    },
  };
  return double;
}

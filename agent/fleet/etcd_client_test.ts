import assert from "node:assert/strict";
import { EtcdClient, prefixEnd } from "./etcd_client.ts";
import { FleetBackendError } from "./fleet_error.ts";

Deno.test("prefixEnd is the first key after every key with the prefix", () => {
  assert.equal(prefixEnd("/liveupdate/fleet/"), "/liveupdate/fleet0");
  assert.equal(prefixEnd("a"), "b");
});

type Handler = (path: string, body: Record<string, unknown>) => Response | Promise<Response>;

async function withServers(
  handlers: Handler[],
  fn: (urls: string[], seen: string[]) => Promise<void>,
): Promise<void> {
  const seen: string[] = [];
  const controller = new AbortController();
  const servers = handlers.map((handler, index) =>
    Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {}, signal: controller.signal },
      async (request) => {
        const path = new URL(request.url).pathname;
        seen.push(`${index}${path}`);
        return await handler(path, await request.json());
      },
    )
  );
  try {
    await fn(servers.map((server) => `http://127.0.0.1:${server.addr.port}`), seen);
  } finally {
    controller.abort();
    await Promise.all(servers.map((server) => server.finished));
  }
}

function client(endpoints: string[], credentials?: { username: string; password: string }) {
  return new EtcdClient({
    endpoints,
    requestTimeoutMs: 2000,
    httpClient: Deno.createHttpClient({}),
    ...(credentials ? { credentials } : {}),
  });
}

const header = { header: { revision: "9" } };

Deno.test("the client fails over on 'no leader' and on a stream error, and stays on the member that answered", async () => {
  const noLeader: Handler = () =>
    Response.json({ error: "etcdserver: no leader", message: "etcdserver: no leader", code: 14 }, {
      status: 503,
    });
  const healthy: Handler = (path) =>
    path === "/v3/lease/keepalive"
      ? Response.json({ result: { ...header, ID: "7", TTL: "30" } })
      : Response.json({ ...header, succeeded: true, responses: [] });
  await withServers([noLeader, healthy], async (urls, seen) => {
    const etcd = client(urls);
    try {
      const result = await etcd.txn([], []);
      assert.deepEqual(result, { succeeded: true, revision: 9, responses: [] });
      assert.equal(etcd.endpoint, urls[1]);
      assert.equal(await etcd.keepAlive("7"), 30);
      assert.deepEqual(seen, ["0/v3/kv/txn", "1/v3/kv/txn", "1/v3/lease/keepalive"]);
    } finally {
      etcd.close();
    }
  });
  const streamError: Handler = () =>
    Response.json({ error: { grpc_code: 14, http_code: 503, message: "leader changed" } });
  await withServers([streamError, streamError], async (urls) => {
    const etcd = client(urls);
    try {
      const error = await etcd.keepAlive("7").catch((e) => e);
      assert.ok(error instanceof FleetBackendError);
      assert.equal(error.retryable, true);
      assert.match(
        error.message,
        /^No etcd endpoint could serve \/v3\/lease\/keepalive: etcd at .* cannot serve now: leader changed\. etcd at .*leader changed\. Check that the cluster has a leader/,
      );
    } finally {
      etcd.close();
    }
  });
});

Deno.test("answers that will not change are not retried on other members", async () => {
  const denied: Handler = () =>
    Response.json({ error: "etcdserver: permission denied", code: 7 }, { status: 403 });
  const garbage: Handler = () => new Response("<html>", { status: 200 });
  await withServers([denied, garbage], async (urls, seen) => {
    const etcd = client(urls);
    try {
      const error = await etcd.range("/x").catch((e) => e);
      assert.ok(error instanceof FleetBackendError);
      assert.equal(error.retryable, false);
      assert.equal(error.kind, "PermissionDenied");
      assert.deepEqual(seen, ["0/v3/kv/range"]);
      const other = client([urls[1]!]);
      try {
        const bad = await other.range("/x").catch((e) => e);
        assert.match(bad.message, /an answer that is not a JSON object: <html>/);
      } finally {
        other.close();
      }
    } finally {
      etcd.close();
    }
  });
});

Deno.test("the client authenticates, sends the token, and authenticates again when it is refused", async () => {
  let tokens = 0;
  const tokensSeen: (string | null)[] = [];
  let first = true;
  const server: Handler = (path, body) => {
    if (path === "/v3/auth/authenticate") {
      assert.deepEqual(body, { name: "agent", password: "pw" });
      return Response.json({ ...header, token: `token-${++tokens}` });
    }
    if (first) {
      first = false;
      return Response.json({ error: "etcdserver: invalid auth token", code: 3 }, { status: 400 });
    }
    return Response.json({
      ...header,
      kvs: [{
        key: btoa("/k"),
        value: btoa("v"),
        create_revision: "3",
        mod_revision: "4",
        version: "2",
      }],
      count: "1",
    });
  };
  const controller = new AbortController();
  const http = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    signal: controller.signal,
  }, async (request) => {
    tokensSeen.push(request.headers.get("authorization"));
    return await server(new URL(request.url).pathname, await request.json());
  });
  const etcd = client([`http://127.0.0.1:${http.addr.port}`], {
    username: "agent",
    password: "pw",
  });
  try {
    const read = await etcd.range("/k");
    assert.deepEqual(read.kvs, [{
      key: "/k",
      value: "v",
      createRevision: 3,
      modRevision: 4,
      version: 2,
      lease: "0",
    }]);
    assert.deepEqual(tokensSeen, [null, "token-1", null, "token-2"]);
  } finally {
    etcd.close();
    controller.abort();
    await http.finished;
  }
});

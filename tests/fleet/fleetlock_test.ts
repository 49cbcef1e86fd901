import assert from "node:assert/strict";
import { FleetBackendError, FleetTimeoutError } from "../../agent/fleet/mod.ts";
import { makeCertificates } from "./etcd_harness.ts";
import { startFleetLock } from "./fleetlock_double.ts";
import { logLines, testFleet } from "./helpers.ts";

function toml(url: string, host: string, extra = ""): string {
  return [
    "[fleet]",
    'backend = "fleetlock"',
    `host_id = "${host}"`,
    'group = "workers"',
    'retry_interval = "100ms"',
    'wait_timeout = "30s"',
    "[fleet.fleetlock]",
    `url = "${url}"`,
    'request_timeout = "300ms"',
    extra,
    "",
  ].join("\n");
}

Deno.test("fleetlock: a slot is locked with pre-reboot and freed with steady-state", async () => {
  await using server = startFleetLock();
  await using a = await testFleet(toml(`${server.url}/`, "c988d2509fdf4cdcbed39037c56406fb"));
  const slot = await a.fleet.acquire();
  assert.equal(slot.state, "held");
  assert.equal(slot.leaseBound, false, "FleetLock locks have no lease");
  assert.deepEqual([...server.holders.get("workers")!], ["c988d2509fdf4cdcbed39037c56406fb"]);
  const [request] = server.requests;
  assert.equal(request?.method, "POST");
  assert.equal(request?.path, "/v1/pre-reboot");
  assert.equal(request?.header, "true");
  assert.equal(request?.contentType, "application/json");
  assert.deepEqual(JSON.parse(request!.body), {
    client_params: { id: "c988d2509fdf4cdcbed39037c56406fb", group: "workers" },
  });
  await slot.persist("kernel-prepare");
  assert.equal(slot.state, "persistent");
  assert.equal(server.requests.length, 1, "persisting sends nothing");
  const outcome = await slot.release(undefined);
  assert.equal(outcome.released, true);
  assert.equal(server.requests.at(-1)?.path, "/v1/steady-state");
  assert.equal(server.holders.get("workers")?.size, 0);
  assert.deepEqual(slot.record, {
    backend: "fleetlock",
    id: "c988d2509fdf4cdcbed39037c56406fb",
    group: "workers",
    acquired_at: slot.record.acquired_at,
    url: server.url,
  });
});

Deno.test("fleetlock: a lock held by another is waited for, with the server's reason", async () => {
  for (const fullStatus of [409, 500]) {
    await using server = startFleetLock({ fullStatus });
    server.holders.set("workers", new Set(["other-host"]));
    await using a = await testFleet(toml(server.url, "host-a"));
    const waiting = a.fleet.acquire();
    // The holder finishes after a few of our tries.
    while (server.requests.length < 3) await new Promise((r) => setTimeout(r, 20));
    server.holders.get("workers")!.delete("other-host");
    const slot = await waiting;
    const busy = slot.decisions.find((d) => d.kind === "slot-busy");
    assert.ok(busy, `status ${fullStatus}`);
    assert.match(busy.message, /no free slot for group "workers": semaphore currently full/);
    assert.equal(busy.fields.kind, "failed_lock_semaphore_full");
    assert.ok((busy.repeats ?? 0) >= 1);
    await slot.release(undefined);
  }
});

Deno.test("fleetlock: server errors and garbage answers are retried with back-off", async () => {
  await using server = startFleetLock();
  server.fault(
    { status: 500, body: JSON.stringify({ kind: "failed_lock", value: "etcd unavailable" }) },
    { status: 502, body: "<html>Bad Gateway</html>" },
    { status: 503, body: "" },
  );
  await using a = await testFleet(toml(server.url, "host-a"));
  const slot = await a.fleet.acquire();
  // One entry in the record (the latest, counted), every answer in the journal.
  const errors = slot.decisions.filter((d) => d.kind === "backend-error");
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.repeats, 2);
  assert.equal(errors[0]!.fields.kind, "http_503");
  assert.equal(errors[0]!.fields.failures, 3);
  const logged = logLines(a.host).filter((line) => line.fleet === "backend-error");
  assert.deepEqual(logged.map((line) => line.kind), ["failed_lock", "http_502", "http_503"]);
  assert.match(String(logged[0]!.message), /answered HTTP 500 \(failed_lock\): etcd unavailable\./);
  assert.match(String(logged[1]!.message), /HTTP 502 \(http_502\): <html>Bad Gateway<\/html>/);
  assert.ok(logged.every((line) => line.level === "warning"));
  // A release that fails is tried again.
  server.fault({ path: "/v1/steady-state", status: 500, body: '{"kind":"x","value":"try later"}' });
  assert.equal((await slot.release(undefined)).released, true);
  assert.equal(server.holders.get("workers")?.size, 0);
});

Deno.test("fleetlock: a server that does not answer times out and is tried again", async () => {
  await using server = startFleetLock();
  server.fault({ hang: true }, { hang: true });
  await using a = await testFleet(toml(server.url, "host-a"));
  const slot = await a.fleet.acquire();
  const errors = slot.decisions.filter((d) => d.kind === "backend-error");
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.repeats, 1);
  assert.equal(errors[0]!.fields.kind, "timeout");
  assert.match(errors[0]!.message, /did not answer within 300 ms/);
  await slot.release(undefined);
});

Deno.test("fleetlock: a slot taken by a host that then stops before changing anything is unlocked", async () => {
  await using server = startFleetLock();
  await using a = await testFleet(toml(server.url, "host-a"));
  const slot = await a.fleet.acquire();
  await slot.abandon("preflight refused: no target kernel");
  assert.equal(slot.state, "abandoned");
  assert.equal(server.holders.get("workers")?.size, 0);
  assert.equal(server.requests.at(-1)?.path, "/v1/steady-state");
});

Deno.test("fleetlock: a server that stays down makes the wait time out", async () => {
  await using server = startFleetLock();
  const url = server.url;
  await server.close();
  await using a = await testFleet(toml(url, "host-a").replace('"30s"', '"1s"'));
  const error = await a.fleet.acquire().catch((e) => e);
  assert.ok(error instanceof FleetTimeoutError, String(error));
  assert.match(error.message, /Cannot reach http:\/\/127\.0\.0\.1:\d+/);
});

Deno.test("fleetlock: a request the server calls malformed fails at once", async () => {
  await using server = startFleetLock();
  server.fault({ status: 400, body: JSON.stringify({ kind: "bad_request", value: "bad group" }) });
  await using a = await testFleet(toml(server.url, "host-a"));
  const error = await a.fleet.acquire().catch((e) => e);
  assert.ok(error instanceof FleetBackendError, String(error));
  assert.equal(error.retryable, false);
  assert.match(error.message, /HTTP 400 \(bad_request\): bad group\. Check fleet\.fleetlock\.url/);
  assert.equal(server.requests.length, 1, "not retried");
});

Deno.test("fleetlock: locking is recursive, so a resumed slot is released after the kexec", async () => {
  await using server = startFleetLock();
  await using before = await testFleet(toml(server.url, "host-a"));
  const slot = await before.fleet.acquire();
  await slot.persist("kernel-prepare");
  await slot.close();
  // The new kernel's agent: it cannot ask whether it holds a lock; it unlocks.
  await using after = await testFleet(toml(server.url, "host-a"));
  const resumed = await after.fleet.resume();
  assert.ok(resumed);
  assert.equal(server.holders.get("workers")?.has("host-a"), true);
  await resumed.release(undefined);
  assert.equal(server.holders.get("workers")?.has("host-a"), false);
  // The operator's release sends the unlock for the given id.
  server.holders.get("workers")!.add("host-b");
  const freed = await after.fleet.backend.operatorRelease("host-b", "workers", { force: false });
  assert.deepEqual(freed.released.map((h) => h.id), ["host-b"]);
  assert.equal(server.holders.get("workers")?.size, 0);
});

Deno.test("fleetlock: over TLS with the operator's CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-fleet-tls-" });
  try {
    const tls = await makeCertificates(dir);
    await using server = startFleetLock({
      tls: {
        cert: await Deno.readTextFile(tls.serverCert),
        key: await Deno.readTextFile(tls.serverKey),
      },
    });
    await using a = await testFleet(toml(server.url, "host-a", `ca_file = "${tls.caFile}"`));
    const slot = await a.fleet.acquire();
    await slot.release(undefined);
    // Without the CA the server's certificate is not trusted.
    await using b = await testFleet(toml(server.url, "host-b").replace('"30s"', '"300ms"'));
    const error = await b.fleet.acquire().catch((e) => e);
    assert.ok(error instanceof FleetTimeoutError, String(error));
    assert.match(error.message, /Cannot reach https:\/\/127\.0\.0\.1:\d+: .*certificate/i);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

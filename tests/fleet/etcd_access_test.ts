/**
 * How the agent reaches etcd: TLS with client certificates, user and password
 * authentication (and a token that expires), endpoint failover, and clear errors
 * when something is wrong.
 */

import assert from "node:assert/strict";
import { FleetBackendError, FleetError, FleetTimeoutError } from "../../agent/fleet/mod.ts";
import { startEtcd } from "./etcd_harness.ts";
import { startFleetLock } from "./fleetlock_double.ts";
import { configRoot, etcdToml, logLines, testFleet } from "./helpers.ts";
import { createFleet } from "../../agent/fleet/mod.ts";
import { createTestHost } from "../../agent/host/mod.ts";
import { createLogger } from "../../agent/log/mod.ts";
import { delay, freePort } from "./wait.ts";

Deno.test("etcd access: TLS with the operator's CA and a client certificate", async () => {
  await using etcd = await startEtcd({ tls: true });
  const tls = etcd.tls!;
  const tlsToml = (extra: string) =>
    etcdToml({ endpoints: etcd.endpoints, host: "host-a", waitTimeout: "1s", extra });
  {
    await using a = await testFleet(tlsToml(
      `ca_file = "${tls.caFile}"\ncert_file = "${tls.clientCert}"\nkey_file = "${tls.clientKey}"`,
    ));
    const slot = await a.fleet.acquire();
    await slot.persist("kernel-prepare");
    assert.equal((await slot.release(undefined)).released, true);
  }
  {
    // No client certificate: etcd refuses the handshake.
    await using a = await testFleet(tlsToml(`ca_file = "${tls.caFile}"`));
    const error = await a.fleet.acquire().catch((e) => e);
    assert.ok(error instanceof FleetTimeoutError, String(error));
    assert.match(error.message, /Cannot reach https:\/\/127\.0\.0\.1:\d+/);
  }
  {
    // Not the CA that signed etcd's certificate.
    await using a = await testFleet(tlsToml(""));
    const error = await a.fleet.acquire().catch((e) => e);
    assert.match(String(error), /certificate/i);
  }
  // A TLS file that is not PEM, or is missing, is a clear error before any request.
  const root = await configRoot(etcdToml({
    endpoints: etcd.endpoints,
    host: "host-a",
    extra: `ca_file = "${etcd.dir}/m0.log"`,
  }));
  const missing = await configRoot(etcdToml({
    endpoints: etcd.endpoints,
    host: "host-a",
    extra: `ca_file = "${etcd.dir}/nope.pem"`,
  }));
  try {
    const host = createTestHost();
    const log = createLogger({
      output: host.stderr,
      clock: host.clock,
      level: "info",
      format: "text",
    });
    await assert.rejects(
      createFleet(root.config, host, log),
      (e: unknown) =>
        e instanceof FleetError && /fleet\.etcd\.ca_file ".*m0\.log" is not PEM/.test(e.message),
    );
    await assert.rejects(
      createFleet(missing.config, host, log),
      /Cannot read fleet\.etcd\.ca_file ".*nope\.pem": it does not exist/,
    );
  } finally {
    await Deno.remove(root.dir, { recursive: true });
    await Deno.remove(missing.dir, { recursive: true });
  }
});

Deno.test("etcd access: a user with a password, a role on the prefix, and expiring tokens", async () => {
  await using etcd = await startEtcd({ extraArgs: ["--auth-token=simple", "--auth-token-ttl=1"] });
  await etcd.etcdctl(["user", "add", "root", "--new-user-password=rootpw"]);
  await etcd.etcdctl(["role", "add", "fleet"]);
  await etcd.etcdctl([
    "role",
    "grant-permission",
    "fleet",
    "readwrite",
    "/liveupdate/fleet/",
    "--prefix=true",
  ]);
  await etcd.etcdctl(["user", "add", "agent", "--new-user-password=agentpw"]);
  await etcd.etcdctl(["user", "grant-role", "agent", "fleet"]);
  await etcd.etcdctl(["auth", "enable"]);
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-fleet-auth-" });
  try {
    await Deno.writeTextFile(`${dir}/good`, "agentpw\n");
    await Deno.writeTextFile(`${dir}/bad`, "wrong\n");
    const toml = (file: string, prefix = "/liveupdate/fleet/") =>
      etcdToml({
        endpoints: etcd.endpoints,
        host: "host-a",
        waitTimeout: "1s",
        prefix,
        extra: `username = "agent"\npassword_file = "${dir}/${file}"`,
      });
    {
      await using a = await testFleet(toml("good"));
      const slot = await a.fleet.acquire();
      // The token expires (TTL 1s); the client authenticates again by itself.
      await delay(2500);
      await slot.persist("kernel-prepare");
      assert.equal((await slot.release(undefined)).released, true);
      assert.ok(
        logLines(a.host).some((line) =>
          line.level === "warning" && /plain http/.test(String(line.message))
        ),
      );
    }
    {
      await using a = await testFleet(toml("bad"));
      const error = await a.fleet.acquire().catch((e) => e);
      assert.ok(error instanceof FleetBackendError, String(error));
      assert.match(
        error.message,
        /rejected user "agent": etcdserver: authentication failed.* Check fleet\.etcd\.username/,
      );
    }
    {
      // The role covers /liveupdate/fleet/ only.
      await using a = await testFleet(toml("good", "/elsewhere/"));
      const error = await a.fleet.acquire().catch((e) => e);
      assert.ok(error instanceof FleetBackendError, String(error));
      assert.match(
        error.message,
        /permission denied\. Give the etcd user "agent" a role with readwrite/,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("etcd access: a dead endpoint is skipped; something that is not etcd is named", async () => {
  await using etcd = await startEtcd();
  const dead = `http://127.0.0.1:${freePort()}`;
  {
    await using a = await testFleet(
      etcdToml({ endpoints: [dead, ...etcd.endpoints], host: "host-a" }),
    );
    const slot = await a.fleet.acquire();
    await slot.release(undefined);
    assert.ok(logLines(a.host).some((line) => /etcd: now using http/.test(String(line.message))));
  }
  {
    await using server = startFleetLock();
    await using a = await testFleet(
      etcdToml({ endpoints: [server.url], host: "host-a", waitTimeout: "0s" }),
    );
    const error = await a.fleet.acquire().catch((e) => e);
    assert.ok(error instanceof FleetBackendError, String(error));
    assert.match(
      error.message,
      /etcd at http:\/\/127\.0\.0\.1:\d+ refused \/v3\/kv\/txn: HTTP 404/,
    );
  }
});

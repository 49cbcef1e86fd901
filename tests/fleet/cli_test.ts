import assert from "node:assert/strict";
import { assertDocument } from "../tools/assert_document.ts";
import { runCli } from "../../agent/cli/mod.ts";
import { createTestHost, libcKernelFs, openLibc } from "../../agent/host/mod.ts";
import { startEtcd } from "./etcd_harness.ts";
import { startFleetLock } from "./fleetlock_double.ts";
import { configRoot, etcdToml, testFleet } from "./helpers.ts";
import { freePort } from "./wait.ts";

async function cli(args: string[]) {
  const host = createTestHost();
  using libc = openLibc();
  const kernelFs = libcKernelFs(libc);
  const code = await runCli(args, host, {
    platform: { libc: () => libc, kernelFs: () => kernelFs },
  });
  return { code, stdout: host.stdout.text(), stderr: host.stderr.text() };
}

Deno.test("cli: fleet status shows holders, halts and this host's state; fleet release frees", async () => {
  await using etcd = await startEtcd();
  const endpoints = etcd.endpoints;
  await using a = await testFleet(etcdToml({ endpoints, host: "host-a", slots: 2 }));
  await using b = await testFleet(etcdToml({ endpoints, host: "host-b", slots: 2 }));
  const live = await b.fleet.acquire();
  const failed = await a.fleet.acquire();
  await failed.persist("kernel-prepare");
  await failed.keep("rolled back: vmm.service did not stop");
  const root = `--config-root=${a.root.dir}`;

  const text = await cli(["fleet", "status", root]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(
    text.stdout,
    /^Fleet: {2}etcd http:\/\/127\.0\.0\.1:\d+ prefix \/liveupdate\/fleet\/\n/,
  );
  assert.match(text.stdout, /\nHost: {3}host-a \(group "default", 2 slot\(s\)\)\n/);
  assert.match(text.stdout, /\nWindow: any time \(no maintenance window\)\n/);
  assert.match(text.stdout, /\nThis host: kept since \S+ \(pid \d+, 1 tries\)\n/);
  assert.match(text.stdout, /\n {2}default: 2 held of 2\n/);
  assert.match(
    text.stdout,
    /\n {4}host-a \(\S+\) {2}failed {2}stage kernel-prepare {2}permanent {2}since \S+ {2}reason: rolled back: vmm\.service did not stop\n/,
  );
  assert.match(text.stdout, /\n {4}host-b \(\S+\) {2}updating {2}stage acquired {2}lease-bound/);
  assert.match(
    text.stdout,
    /\nHalted by \(free with 'liveupdate-agent fleet release HOST'\):\n {2}host-a .*in group default since \S+: rolled back/,
  );

  const json = await cli(["fleet", "status", "--json", root]);
  const doc = assertDocument("fleet-status", json.stdout);
  assert.equal(doc.version, 1);
  assert.equal(doc.backend, "etcd");
  assert.deepEqual(doc.host, { id: "host-a", group: "default", slots: 2 });
  assert.equal(doc.local.phase, "kept");
  assert.deepEqual(doc.fleet.holders.map((h: { id: string }) => h.id), ["host-a", "host-b"]);
  assert.equal(doc.fleet.halts[0].reason, "rolled back: vmm.service did not stop");
  assert.equal(doc.error, null);

  // The general status shows the fleet line from the state file, without asking etcd.
  const general = await cli(["status", root]);
  assert.match(
    general.stdout,
    /\n {6}Fleet: etcd, group default: kept since \S+ \(1 tries\) — Keeping the slot/,
  );

  const generalJson = assertDocument("status", (await cli(["status", "--json", root])).stdout);
  assert.equal(generalJson.fleet.state.phase, "kept");

  // A live slot needs --force (exit 7, busy); the kept one is freed by default (this host).
  const refused = await cli(["fleet", "release", "host-b", root]);
  assert.equal(refused.code, 7);
  assert.match(refused.stderr, /Host "host-b" is updating right now .* add --force/);
  const freed = await cli(["fleet", "release", root]);
  assert.equal(freed.code, 0, freed.stderr);
  assert.match(
    freed.stdout,
    /^Freed the slot of host-a .* in group default\.\nLifted the halt of host-a in group default: rolled back/,
  );
  assert.match(freed.stderr, /Operator freed the fleet slot of "host-a"/);
  const again = await cli(["fleet", "release", "host-a", root]);
  assert.equal(again.stdout, '"host-a" holds no slot and halts nothing.\n');
  const forced = await cli(["fleet", "release", "host-b", "--force", "--json", root]);
  assert.equal(forced.code, 0);
  assert.deepEqual(
    assertDocument<{ released: { id: string }[] }>("fleet-release", forced.stdout).released.map((
      h: { id: string },
    ) => h.id),
    ["host-b"],
  );
  await live.persist("kernel-prepare").catch(() => {});
  assert.equal(live.state, "lost", "the agent learns its slot was taken away");
});

Deno.test("cli: fleet status when etcd cannot be reached, and without a fleet", async () => {
  const down = await configRoot(
    etcdToml({ endpoints: [`http://127.0.0.1:${freePort()}`], host: "h" }),
  );
  try {
    const result = await cli(["fleet", "status", `--config-root=${down.dir}`]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^Fleet: {2}etcd/);
    assert.match(result.stdout, /This host: no fleet activity recorded in this boot\./);
    assert.match(
      result.stderr,
      /Cannot read the fleet's slots: No etcd endpoint could serve \/v3\/kv\/txn: Cannot reach http:\/\/127\.0\.0\.1:\d+/,
    );
  } finally {
    await Deno.remove(down.dir, { recursive: true });
  }
  const none = await configRoot("");
  try {
    const status = await cli(["fleet", "status", `--config-root=${none.dir}`]);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /^Fleet: {2}none/);
    const noneJson = await cli(["fleet", "status", "--json", `--config-root=${none.dir}`]);
    assert.deepEqual(assertDocument("fleet-status", noneJson.stdout), {
      version: 1,
      backend: "none",
    });
    const release = await cli(["fleet", "release", `--config-root=${none.dir}`]);
    assert.equal(release.code, 2);
    assert.match(release.stderr, /fleet\.backend is "none": there is no fleet slot to free/);
    const bad = await cli(["fleet", "frobnicate", `--config-root=${none.dir}`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown fleet action 'frobnicate'/);
  } finally {
    await Deno.remove(none.dir, { recursive: true });
  }
});

Deno.test("cli: fleet release with FleetLock sends the unlock for the host", async () => {
  await using server = startFleetLock();
  server.holders.set("workers", new Set(["host-9"]));
  const root = await configRoot(
    `[fleet]\nbackend = "fleetlock"\nhost_id = "host-1"\ngroup = "workers"\n` +
      `[fleet.fleetlock]\nurl = "${server.url}"\n`,
  );
  try {
    const status = await cli(["fleet", "status", `--config-root=${root.dir}`]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /the FleetLock protocol cannot list holders/);
    const freed = await cli(["fleet", "release", "host-9", `--config-root=${root.dir}`]);
    assert.equal(freed.code, 0, freed.stderr);
    assert.equal(freed.stdout, "Sent the FleetLock unlock for host-9 in group workers.\n");
    assert.equal(server.holders.get("workers")?.size, 0);
    assert.deepEqual(JSON.parse(server.requests.at(-1)!.body), {
      client_params: { id: "host-9", group: "workers" },
    });
  } finally {
    await Deno.remove(root.dir, { recursive: true });
  }
});

Deno.test("cli: a binary whose network permission does not cover the endpoint says how to fix it", async () => {
  await using etcd = await startEtcd();
  const root = await configRoot(etcdToml({ endpoints: etcd.endpoints, host: "host-a" }));
  try {
    const main = new URL("../../agent/main.ts", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        "--allow-ffi",
        // As `deno task compile --net-host=127.0.0.1:1` would build it.
        "--allow-net=unix:/run/dbus/system_bus_socket,127.0.0.1:1",
        main,
        "fleet",
        "status",
        `--config-root=${root.dir}`,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 1, stderr);
    assert.match(
      stderr,
      /The agent has no network permission for http:\/\/127\.0\.0\.1:\d+\. .*--net-host=127\.0\.0\.1:\d+/,
    );
  } finally {
    await Deno.remove(root.dir, { recursive: true });
  }
});

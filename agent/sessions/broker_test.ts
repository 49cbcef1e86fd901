/**
 * The broker with real sockets, real processes' fds and a real record on disk;
 * only the LUO kernel is a stand-in (memfds play the session fds). The real
 * kernel runs the same broker in tests/mainline/ (the "kernel" tier).
 */

import assert from "node:assert/strict";
import { captureOutput } from "../host/test_host.ts";
import { realClock } from "../host/real_host.ts";
import { cString, type Libc, openLibc } from "../host/libc.ts";
import { libcKernelFs } from "../host/libc_kernel_fs.ts";
import { liveupdateError } from "../kernel/mainline/errors.ts";
import { Session } from "../kernel/mainline/session.ts";
import { createLogger } from "../log/mod.ts";
import { type BrokerOptions, SessionBroker } from "./broker.ts";
import {
  abortSessions,
  BrokerClient,
  BrokerRequestError,
  prepareSessions,
  sessionsStatus,
} from "./client.ts";
import { readRecord, type SessionRecord, writeRecord } from "./record.ts";
import { connectUnix } from "./unix_socket.ts";

/** A session fd stand-in: a memfd named after the session; finish is recorded. */
class FakeSession extends Session {
  finished = false;
  override finish(): void {
    if (this.direction === "outgoing") {
      throw liveupdateError("EINVAL", { request: "finish", file: "fake", session: this.name });
    }
    this.finished = true;
  }
}

function fakeDevice(libc: Libc, incoming: Iterable<string> = []) {
  const handedOver = new Set(incoming);
  const sessions: FakeSession[] = [];
  const make = (name: string, direction: "outgoing" | "incoming") => {
    const fd = libc.symbols.memfd_create(cString(`fake-session ${name}`), 1);
    const session = new FakeSession(libc, fd, name, direction);
    sessions.push(session);
    return session;
  };
  const open = {
    createSession: (name: string) => make(name, "outgoing"),
    retrieveSession: (name: string) => {
      if (!handedOver.delete(name)) {
        throw liveupdateError("ENOENT", {
          request: "retrieve-session",
          file: "/dev/liveupdate",
          session: name,
        });
      }
      return make(name, "incoming");
    },
  };
  return {
    sessions,
    use: <T>(action: (device: typeof open) => T | Promise<T>) => Promise.resolve(action(open)),
    retrieveSession: (name: string) => Promise.resolve(open.retrieveSession(name)),
  };
}

interface Fixture {
  libc: Libc;
  dir: string;
  socket: string;
  broker: SessionBroker;
  device: ReturnType<typeof fakeDevice>;
  log: ReturnType<typeof captureOutput>;
}

async function withBroker(
  options: Partial<BrokerOptions> & { incoming?: string[]; record?: SessionRecord },
  body: (fixture: Fixture) => Promise<void>,
): Promise<void> {
  using libc = openLibc();
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-mainline-broker-" });
  const log = captureOutput();
  const device = fakeDevice(libc, options.incoming);
  try {
    if (options.record) await writeRecord(dir, options.record);
    const broker = await SessionBroker.start({
      libc,
      device,
      clock: realClock,
      log: createLogger({ output: log, clock: realClock, level: "debug", format: "text" }),
      fs: libcKernelFs(libc),
      proc: "/proc",
      socketPath: `${dir}/sessions.sock`,
      stateDir: dir,
      readyTimeout: 5000,
      claimTimeout: 60_000,
      bootId: "this-boot",
      liveupdateNumber: () => Promise.resolve(7),
      ...options,
    });
    try {
      await body({ libc, dir, socket: `${dir}/sessions.sock`, broker, device, log });
    } finally {
      await broker.close();
      for (const session of device.sessions) session.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("prepare hands every subscriber its session and holds them once all are ready", async () => {
  await withBroker({}, async ({ libc, dir, socket, broker, device }) => {
    const vm = BrokerClient.connect(libc, socket);
    const db = BrokerClient.connect(libc, socket);
    try {
      await vm.subscribe("vm-1");
      await db.subscribe("db-1");
      const preparing = prepareSessions(libc, socket, 5000);
      for (const [client, id] of [[vm, "vm-1"], [db, "db-1"]] as const) {
        const session = await client.preservation(id);
        assert.equal(
          Deno.readLinkSync(`/proc/self/fd/${session.fd}`),
          `/memfd:fake-session ${id} (deleted)`,
        );
        await client.ready(id);
        session.close();
      }
      const result = await preparing;
      assert.deepEqual(result, { ok: true, sessions: ["vm-1", "db-1"] });
      assert.equal(broker.status().phase, "prepared");
      const record = await readRecord(dir);
      assert.equal(record?.phase, "prepared");
      assert.equal(record?.preparedBootId, "this-boot");
      assert.equal(record?.liveupdateNumber, 7);
      assert.deepEqual(record?.sessions.map((s) => [s.name, s.client.pid]), [
        ["vm-1", Deno.pid],
        ["db-1", Deno.pid],
      ]);
      // The broker still holds both sessions after the clients closed theirs.
      assert.ok(device.sessions.every((s) => s.open));
      // While prepared, nobody new may subscribe.
      const late = BrokerClient.connect(libc, socket);
      await assert.rejects(
        () => late.subscribe("late-1"),
        (error) => error instanceof BrokerRequestError && error.errno === "EBUSY",
      );
      await late.close();
    } finally {
      await vm.close();
      await db.close();
    }
  });
});

Deno.test("a client that never says READY rolls the preparation back", async () => {
  await withBroker({}, async ({ libc, dir, socket, broker, device, log }) => {
    const ready = BrokerClient.connect(libc, socket);
    const stuck = BrokerClient.connect(libc, socket);
    try {
      await ready.subscribe("vm-1");
      await stuck.subscribe("stuck-1");
      const preparing = prepareSessions(libc, socket, 300);
      const session = await ready.preservation("vm-1");
      await ready.ready("vm-1");
      session.close();
      const held = await stuck.preservation("stuck-1");
      const result = await preparing;
      assert.equal(result.ok, false);
      assert.ok(!result.ok);
      assert.match(result.reason, /did not report READY within 300 ms/);
      assert.deepEqual(result.clients.map((c) => [c.id, c.problem]), [["stuck-1", "not-ready"]]);
      // Every client is told, the broker closed its sessions, nothing is recorded.
      assert.equal((await ready.expect("CANCEL_PRESERVATION")).id, "vm-1");
      assert.equal((await stuck.expect("CANCEL_PRESERVATION")).id, "stuck-1");
      assert.ok(device.sessions.every((s) => !s.open));
      assert.equal(await readRecord(dir), null);
      assert.equal(broker.status().phase, "idle");
      assert.match(log.text(), /Preparation aborted/);
      held.close();
      // The subscribers stay subscribed; the next attempt works.
      const again = prepareSessions(libc, socket, 5000);
      for (const [client, id] of [[ready, "vm-1"], [stuck, "stuck-1"]] as const) {
        const s = await client.preservation(id);
        await client.ready(id);
        s.close();
      }
      assert.equal((await again).ok, true);
    } finally {
      await ready.close();
      await stuck.close();
    }
  });
});

Deno.test("a client leaving during preparation aborts it at once", async () => {
  await withBroker({ readyTimeout: 60_000 }, async ({ libc, socket, broker }) => {
    const client = BrokerClient.connect(libc, socket);
    await client.subscribe("vm-1");
    const preparing = prepareSessions(libc, socket);
    const session = await client.preservation("vm-1");
    session.close();
    await client.close();
    const result = await preparing;
    assert.ok(!result.ok);
    assert.deepEqual(result.clients.map((c) => [c.id, c.problem]), [["vm-1", "disconnected"]]);
    assert.equal(broker.status().subscribers.length, 0);
  });
});

Deno.test("a client may leave after READY while others are still preserving", async () => {
  await withBroker({}, async ({ libc, socket, broker, device }) => {
    const quick = BrokerClient.connect(libc, socket);
    const slow = BrokerClient.connect(libc, socket);
    try {
      await quick.subscribe("quick-1");
      await slow.subscribe("slow-1");
      const preparing = prepareSessions(libc, socket, 5000);
      const first = await quick.preservation("quick-1");
      await quick.ready("quick-1");
      first.close();
      await quick.close();
      const second = await slow.preservation("slow-1");
      await slow.ready("slow-1");
      second.close();
      assert.deepEqual(await preparing, { ok: true, sessions: ["quick-1", "slow-1"] });
      assert.ok(device.sessions.every((s) => s.open));
      // An abort later forgets the client that left.
      await abortSessions(libc, socket, "test");
      assert.deepEqual(broker.status().subscribers.map((s) => s.id), ["slow-1"]);
    } finally {
      await quick.close();
      await slow.close();
    }
  });
});

Deno.test("the broker refuses bad and conflicting requests with clear errors", async () => {
  await withBroker({}, async ({ libc, socket }) => {
    const first = BrokerClient.connect(libc, socket);
    const second = BrokerClient.connect(libc, socket);
    try {
      await first.subscribe("vm-1");
      const refused = async (body: () => Promise<unknown>) => {
        try {
          await body();
        } catch (error) {
          assert.ok(error instanceof BrokerRequestError);
          return [error.errno, error.message];
        }
        throw new Error("not refused");
      };
      assert.deepEqual(
        await refused(() => second.subscribe("vm-1")),
        ["EEXIST", `The id "vm-1" is taken by the client with pid ${Deno.pid}.`],
      );
      const [errno, message] = await refused(() => second.subscribe("x".repeat(64)));
      assert.equal(errno, "EINVAL");
      assert.match(message!, /64 bytes long \(at most 63\)/);
      assert.match((await refused(() => first.subscribe("vm-2")))[1]!, /already subscribed/);
      assert.match((await refused(() => first.ready("vm-1")))[1]!, /not preserving/);
      assert.match((await refused(() => first.finish("vm-1")))[1]!, /has not claimed/);
      // Garbage on the wire gets an ERROR, and the connection stays usable.
      const raw = connectUnix(libc, socket);
      await raw.send(new TextEncoder().encode('not json\n{"cmd":"DANCE"}\n{"cmd":"STATUS"}\n'));
      let text = "";
      while (text.split("\n").length < 4) {
        const part = await raw.receive();
        assert.ok(part);
        text += new TextDecoder().decode(part.data);
      }
      const [notJson, unknown, status] = text.trim().split("\n").map((line) => JSON.parse(line));
      assert.equal(notJson.event, "ERROR");
      assert.match(notJson.message, /Not JSON/);
      assert.match(unknown.message, /Unknown command "DANCE"/);
      assert.equal(status.event, "STATUS");
      await raw.close();
    } finally {
      await first.close();
      await second.close();
    }
  });
});

function preparedRecord(names: string[], liveupdateNumber: number | null = 6): SessionRecord {
  return {
    version: 1,
    phase: "prepared",
    preparedBootId: "previous-boot",
    preparedAt: "2026-01-01T00:00:00.000Z",
    liveupdateNumber,
    sessions: names.map((name) => ({ name, client: { pid: 100, uid: 0 } })),
  };
}

async function waitFor<T>(probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("condition never held");
}

Deno.test("after the kexec: claimed sessions are handed back, unclaimed ones finished, lost ones reported", async () => {
  await withBroker(
    {
      record: preparedRecord(["vm-1", "orphan-1", "gone-1"]),
      incoming: ["vm-1", "orphan-1"],
      claimTimeout: 400,
    },
    async ({ libc, dir, socket, device, log }) => {
      const client = BrokerClient.connect(libc, socket);
      try {
        const session = await client.claim("vm-1");
        assert.equal(session.direction, "incoming");
        assert.equal(
          Deno.readLinkSync(`/proc/self/fd/${session.fd}`),
          "/memfd:fake-session vm-1 (deleted)",
        );
        session.close();
        await client.finish("vm-1");
        await assert.rejects(
          () => client.claim("gone-1"),
          (error) => error instanceof BrokerRequestError && error.errno === "ENOENT",
        );
        const record = await waitFor(async () => {
          const record = await readRecord(dir);
          return record?.phase === "done" ? record : undefined;
        });
        assert.deepEqual(
          Object.fromEntries(record.sessions.map((s) => [s.name, s.outcome])),
          { "vm-1": "finished", "orphan-1": "finished-unclaimed", "gone-1": "lost" },
        );
        assert.equal(record.restoredBootId, "this-boot");
        assert.match(record.sessions.find((s) => s.name === "gone-1")!.detail!, /ENOENT/);
        const finished = device.sessions.filter((s) => s.finished).map((s) => s.name).sort();
        assert.deepEqual(finished, ["orphan-1", "vm-1"]);
        assert.match(log.text(), /"orphan-1" was not claimed within 400 ms/);
        await assert.rejects(
          () => client.claim("orphan-1"),
          (error) => error instanceof BrokerRequestError && /already finished/.test(error.message),
        );
      } finally {
        await client.close();
      }
    },
  );
});

Deno.test("a claimed session whose client leaves before FINISH can be claimed again", async () => {
  await withBroker(
    { record: preparedRecord(["vm-1"]), incoming: ["vm-1"] },
    async ({ libc, socket, broker }) => {
      const first = BrokerClient.connect(libc, socket);
      (await first.claim("vm-1")).close();
      await first.close();
      await waitFor(() =>
        Promise.resolve(broker.status().incoming[0]?.outcome === "waiting" ? true : undefined)
      );
      const second = BrokerClient.connect(libc, socket);
      try {
        (await second.claim("vm-1")).close();
        await second.finish("vm-1");
        assert.equal(broker.status().incoming[0]?.outcome, "finished");
      } finally {
        await second.close();
      }
    },
  );
});

Deno.test("a kernel that did not take the handover over: every session is reported lost", async () => {
  await withBroker(
    {
      record: preparedRecord(["vm-1"], 6),
      incoming: ["vm-1"],
      liveupdateNumber: () => Promise.resolve(1),
    },
    ({ broker, log }) => {
      const [vm] = broker.status().incoming;
      assert.equal(vm?.outcome, "lost");
      assert.match(vm?.detail ?? "", /liveupdate number is 1, 7 was expected/);
      assert.match(log.text(), /kexec_load/);
      return Promise.resolve();
    },
  );
});

Deno.test("sessions prepared in this very boot are gone once their broker stopped", async () => {
  const record = { ...preparedRecord(["vm-1"]), preparedBootId: "this-boot" };
  await withBroker({ record }, async ({ dir, broker, log }) => {
    assert.equal(broker.status().incoming.length, 0);
    assert.equal(await readRecord(dir), null);
    assert.match(log.text(), /stopped before the kexec/);
  });
});

Deno.test("control requests: status and abort through the socket", async () => {
  await withBroker({}, async ({ libc, socket, device }) => {
    const client = BrokerClient.connect(libc, socket);
    try {
      await client.subscribe("vm-1");
      const status = await sessionsStatus(libc, socket);
      assert.deepEqual(status.subscribers, [{ id: "vm-1", pid: Deno.pid, state: "subscribed" }]);
      const preparing = prepareSessions(libc, socket, 5000);
      const session = await client.preservation("vm-1");
      await client.ready("vm-1");
      session.close();
      assert.equal((await preparing).ok, true);
      await abortSessions(libc, socket, "the kexec failed");
      const cancel = await client.expect("CANCEL_PRESERVATION");
      assert.equal(cancel.reason, "the kexec failed");
      assert.ok(device.sessions.every((s) => !s.open));
      assert.equal((await sessionsStatus(libc, socket)).phase, "idle");
    } finally {
      await client.close();
    }
  });
});

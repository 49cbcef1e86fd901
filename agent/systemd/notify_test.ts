import assert from "node:assert/strict";
import { type Libc, openLibc } from "../host/libc.ts";
import { createNotifier, notifyAddress, NotifyError } from "./notify.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;

/** A datagram socket the test binds itself, standing in for the manager's. */
function bindSocket(libc: Libc, name: string): number {
  const fd = libc.symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  assert.ok(fd >= 0, libc.errnoName());
  const { address, length } = notifyAddress(name);
  assert.equal(libc.symbols.bind(fd, address, length), 0, libc.errnoName());
  return fd;
}

function receive(libc: Libc, fd: number): string | undefined {
  const buffer = new Uint8Array(4096);
  const count = Number(libc.symbols.read(fd, buffer, 4096n));
  if (count < 0) return undefined;
  return new TextDecoder().decode(buffer.subarray(0, count));
}

const env = (values: Record<string, string>) => ({ get: (name: string) => values[name] });

Deno.test("sd_notify messages reach a socket bound at a path", async () => {
  using libc = openLibc();
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-notify-" });
  const path = `${dir}/notify`;
  const fd = bindSocket(libc, path);
  const notifier = createNotifier(env({ NOTIFY_SOCKET: path }), () => libc);
  try {
    assert.equal(notifier.enabled, true);
    notifier.ready("watching:\nstate normal");
    assert.equal(receive(libc, fd), "READY=1\nSTATUS=watching: state normal");
    notifier.status("state prepared");
    assert.equal(receive(libc, fd), "STATUS=state prepared");
    notifier.watchdog();
    assert.equal(receive(libc, fd), "WATCHDOG=1");
    notifier.reloading();
    assert.equal(receive(libc, fd), "RELOADING=1");
    notifier.stopping();
    assert.equal(receive(libc, fd), "STOPPING=1");
    assert.equal(receive(libc, fd), undefined, "one datagram per call");
  } finally {
    notifier.close();
    libc.symbols.close(fd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sd_notify messages reach an abstract socket ('@name')", () => {
  using libc = openLibc();
  const name = `@liveupdate-test-systemd-notify-${Deno.pid}`;
  const fd = bindSocket(libc, name);
  const notifier = createNotifier(env({ NOTIFY_SOCKET: name }), () => libc);
  try {
    notifier.send({ READY: "1", STATUS: "abstract" });
    assert.equal(receive(libc, fd), "READY=1\nSTATUS=abstract");
  } finally {
    notifier.close();
    libc.symbols.close(fd);
  }
});

Deno.test("without NOTIFY_SOCKET the notifier does nothing and never loads libc", () => {
  const notifier = createNotifier(env({}), () => {
    throw new Error("libc loaded");
  });
  assert.equal(notifier.enabled, false);
  notifier.ready("x");
  notifier.stopping();
  notifier.close();
});

Deno.test("a notify socket nobody listens on is a NotifyError with the errno", async () => {
  using libc = openLibc();
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-notify-" });
  const notifier = createNotifier(env({ NOTIFY_SOCKET: `${dir}/absent` }), () => libc);
  try {
    assert.throws(() => notifier.ready(), (error: unknown) => {
      assert.ok(error instanceof NotifyError);
      assert.equal(error.errno, "ENOENT");
      assert.match(error.message, /^Cannot notify the service manager at ".*absent": ENOENT\./);
      return true;
    });
  } finally {
    notifier.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NOTIFY_SOCKET values the agent cannot use are refused clearly", () => {
  assert.throws(() => notifyAddress("vsock:2:1234"), /neither an absolute path nor an abstract/);
  assert.throws(() => notifyAddress(`/${"x".repeat(200)}`), /not a usable socket address/);
  const path = notifyAddress("/run/systemd/notify");
  assert.equal(path.length, 2 + "/run/systemd/notify".length + 1);
  const abstract = notifyAddress("@x");
  assert.deepEqual([...abstract.address.subarray(0, 4)], [1, 0, 0, 120]);
  assert.equal(abstract.length, 4);
});

Deno.test("the watchdog interval is half of WATCHDOG_USEC, for this process only", () => {
  const mine = createNotifier(
    env({ WATCHDOG_USEC: "10000000", WATCHDOG_PID: `${Deno.pid}` }),
    () => {
      throw new Error("unused");
    },
  );
  assert.equal(mine.watchdogIntervalMs(), 5000);
  const other = createNotifier(env({ WATCHDOG_USEC: "10000000", WATCHDOG_PID: "1" }), () => {
    throw new Error("unused");
  });
  assert.equal(other.watchdogIntervalMs(), undefined);
  const off = createNotifier(env({}), () => {
    throw new Error("unused");
  });
  assert.equal(off.watchdogIntervalMs(), undefined);
});

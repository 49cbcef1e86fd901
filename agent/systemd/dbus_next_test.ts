import assert from "node:assert/strict";
import { dbusNextConnector } from "./dbus_next.ts";
import { BusConnectError } from "./systemd_error.ts";

async function connectError(address: string): Promise<BusConnectError> {
  try {
    await dbusNextConnector.connect(address, { timeoutMs: 5000 });
  } catch (error) {
    assert.ok(error instanceof BusConnectError, `expected BusConnectError, got ${error}`);
    return error;
  }
  assert.fail(`connected to ${address}`);
}

Deno.test("addresses the D-Bus library cannot use are refused before connecting", async () => {
  const abstract = await connectError("unix:abstract=/tmp/dbus-test");
  assert.match(abstract.message, /abstract-namespace addresses are not supported/);
  assert.equal(abstract.address, "unix:abstract=/tmp/dbus-test");
  const tcp = await connectError("tcp:host=localhost,port=1");
  assert.match(tcp.message, /must have the form "unix:path=\/ABSOLUTE\/PATH"/);
});

Deno.test("a socket that does not exist is a BusConnectError naming the address", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-dbus-" });
  try {
    const error = await connectError(`unix:path=${dir}/missing`);
    assert.match(
      error.message,
      /^Cannot connect to the D-Bus bus at "unix:path=.*missing": .*ENOENT/,
    );
    assert.match(error.message, /systemd\.bus_address/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a socket that never answers times out as a BusConnectError", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-dbus-" });
  const listener = Deno.listen({ transport: "unix", path: `${dir}/silent` });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  try {
    const error = await dbusNextConnector.connect(`unix:path=${dir}/silent`, { timeoutMs: 200 })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof BusConnectError, String(error));
    assert.match(error.message, /no answer within 200 ms/);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of accepted) conn.close();
    await Deno.remove(dir, { recursive: true });
  }
});

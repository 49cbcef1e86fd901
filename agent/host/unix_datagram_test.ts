import assert from "node:assert/strict";
import { openLibc } from "./libc.ts";
import { sendDatagram, sockaddrUn } from "./unix_datagram.ts";

Deno.test("sockaddrUn lays out paths and abstract names", () => {
  const path = sockaddrUn("/run/x");
  assert.equal(path.length, 2 + 6 + 1);
  assert.deepEqual([...path.address.subarray(0, 9)], [1, 0, 47, 114, 117, 110, 47, 120, 0]);
  const abstract = sockaddrUn("@notify");
  assert.equal(abstract.length, 2 + 7);
  assert.equal(abstract.address[2], 0);
  assert.throws(() => sockaddrUn("/" + "x".repeat(200)), RangeError);
  assert.throws(() => sockaddrUn(""), RangeError);
});

Deno.test("sendDatagram reports the errno of a missing socket", () => {
  using libc = openLibc();
  const payload = new TextEncoder().encode("READY=1");
  assert.equal(sendDatagram(libc, "/nonexistent/notify.socket", payload), "ENOENT");
});

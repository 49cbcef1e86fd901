import assert from "node:assert/strict";
import { errnoName, errnoNumber } from "./errno.ts";
import { cString, openLibc } from "./libc.ts";

Deno.test("errno names round-trip", () => {
  assert.equal(errnoName(22), "EINVAL");
  assert.equal(errnoName(16), "EBUSY");
  assert.equal(errnoName(9999), "errno 9999");
  assert.equal(errnoNumber("EAGAIN"), 11);
  assert.equal(errnoNumber("ENOPE"), undefined);
});

Deno.test("libc reports the errno of a failed open", () => {
  using libc = openLibc();
  const fd = libc.symbols.open(cString("/nonexistent/liveupdate"), 0, 0);
  assert.equal(fd, -1);
  assert.equal(libc.errnoName(), "ENOENT");
});

Deno.test("libc reads a file through open, pread and close", () => {
  using libc = openLibc();
  const fd = libc.symbols.open(cString("/proc/self/stat"), 0, 0);
  assert.ok(fd >= 0);
  try {
    const buffer = new Uint8Array(64);
    const count = Number(libc.symbols.pread(fd, buffer, 64n, 0n));
    assert.ok(count > 0);
    assert.match(new TextDecoder().decode(buffer.subarray(0, count)), /^\d+ \(/);
  } finally {
    assert.equal(libc.symbols.close(fd), 0);
  }
});

Deno.test("cString refuses NUL inside", () => {
  assert.throws(() => cString("a\0b"), TypeError);
  assert.deepEqual([...cString("ab")], [97, 98, 0]);
});

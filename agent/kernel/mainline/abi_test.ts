import assert from "node:assert/strict";
import {
  decodeFd,
  decodeGetName,
  decodeSessionFd,
  encodeFdArgument,
  encodeFinishArgument,
  encodeGetNameArgument,
  encodeSessionArgument,
  IOCTL,
  LAYOUT,
  sessionNameProblem,
} from "./abi.ts";

Deno.test("ioctl numbers are _IO(0xBA, nr)", () => {
  assert.deepEqual(IOCTL, {
    createSession: 0xba00,
    retrieveSession: 0xba01,
    preserveFd: 0xba40,
    retrieveFd: 0xba41,
    finish: 0xba42,
    getName: 0xba43,
  });
});

Deno.test("session arguments: size first, fd -1, NUL-terminated name, zeroed tail", () => {
  const bytes = encodeSessionArgument("vm-1");
  assert.equal(bytes.length, LAYOUT.session.size);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getUint32(0, true), 72);
  assert.equal(view.getInt32(4, true), -1);
  assert.deepEqual([...bytes.subarray(8, 13)], [0x76, 0x6d, 0x2d, 0x31, 0]);
  assert.ok(bytes.subarray(12).every((byte) => byte === 0));
  view.setInt32(4, 42, true);
  assert.equal(decodeSessionFd(bytes), 42);
  assert.throws(() => encodeSessionArgument("x".repeat(64)), RangeError);
});

Deno.test("fd arguments carry the token as an unsigned 64-bit number at offset 8", () => {
  const bytes = encodeFdArgument(5, 0xffff_ffff_ffff_ffffn);
  const view = new DataView(bytes.buffer);
  assert.equal(bytes.length, 16);
  assert.equal(view.getUint32(0, true), 16);
  assert.equal(view.getInt32(4, true), 5);
  assert.equal(view.getBigUint64(8, true), 0xffff_ffff_ffff_ffffn);
  assert.equal(decodeFd(bytes), 5);
  assert.throws(() => encodeFdArgument(5, -1n), RangeError);
  assert.throws(() => encodeFdArgument(5, 1n << 64n), RangeError);
});

Deno.test("finish and get-name arguments", () => {
  assert.deepEqual([...encodeFinishArgument()], [8, 0, 0, 0, 0, 0, 0, 0]);
  const name = encodeGetNameArgument();
  assert.equal(name.length, 72);
  assert.equal(new DataView(name.buffer).getUint32(0, true), 72);
  name.set(new TextEncoder().encode("db-1"), 8);
  assert.equal(decodeGetName(name), "db-1");
  name.fill(0x61, 8);
  assert.equal(decodeGetName(name), "a".repeat(64));
});

Deno.test("session names: 1 to 63 bytes, no NUL", () => {
  assert.equal(sessionNameProblem("vm-1"), undefined);
  assert.equal(sessionNameProblem("é".repeat(31)), undefined);
  assert.equal(sessionNameProblem(""), "it is empty");
  assert.equal(sessionNameProblem("a\0b"), "it contains a NUL byte");
  assert.equal(sessionNameProblem("é".repeat(32)), "it is 64 bytes long (at most 63)");
});

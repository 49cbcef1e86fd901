import assert from "node:assert/strict";
import { ChannelError, LineReader, parseEvent } from "./channel.ts";

Deno.test("channel: parses a record and keeps tabs inside its value", () => {
  assert.deepEqual(parseEvent("value\t2\tincoming\taccepted\tprevious=1.0\r", 1500), {
    kind: "value",
    boot: 2,
    name: "incoming",
    value: "accepted\tprevious=1.0",
    at: 1500,
  });
});

Deno.test("channel: refuses what the guest cannot have written", () => {
  for (const line of ["", "bogus\t1\tx\ty", "check\tone\tx\tok", "check"]) {
    assert.throws(() => parseEvent(line, 0), ChannelError);
  }
});

Deno.test("channel: a line split across reads comes out whole, once", () => {
  const reader = new LineReader();
  assert.deepEqual(reader.push("step\t1\tbo"), []);
  assert.deepEqual(reader.push("ot1\t3.2\nvalue\t1\tx\t"), ["step\t1\tboot1\t3.2"]);
  assert.deepEqual(reader.push("y\n\n"), ["value\t1\tx\ty"]);
});

/**
 * A stand-in for journald's native socket, in a worker so its blocking reads never
 * stall the test's event loop (the agent's sends block once the socket's queue is
 * full, as with the real journal). Binds a datagram socket at the path it is
 * sent, answers "ready", posts every datagram back, and ends on the datagram "STOP".
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { openLibc } from "../../agent/host/libc.ts";
import { sockaddrUn } from "../../agent/host/unix_datagram.ts";

self.onmessage = (event: MessageEvent<{ path: string }>) => {
  const libc = openLibc();
  const fd = libc.symbols.socket(1, 2, 0);
  try {
    const { address, length } = sockaddrUn(event.data.path);
    if (libc.symbols.bind(fd, address, length) !== 0) {
      self.postMessage({ error: `bind: ${libc.errnoName()}` });
      return;
    }
    self.postMessage({ ready: true });
    const buffer = new Uint8Array(1 << 20);
    for (;;) {
      const count = Number(libc.symbols.read(fd, buffer, BigInt(buffer.length)));
      if (count < 0) {
        self.postMessage({ error: `read: ${libc.errnoName()}` });
        return;
      }
      const datagram = buffer.slice(0, count);
      if (new TextDecoder().decode(datagram) === "STOP") break;
      self.postMessage({ datagram });
    }
  } finally {
    libc.symbols.close(fd);
    libc.close();
    self.postMessage({ done: true });
  }
};

import assert from "node:assert/strict";
import { cString, openLibc } from "../host/libc.ts";
import { closeFds, connectUnix, SocketError, UnixListener } from "./unix_socket.ts";

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-mainline-sock-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("unix sockets pass data and fds both ways, with peer credentials", async () => {
  using libc = openLibc();
  await withDir(async (dir) => {
    const listener = UnixListener.listen(libc, `${dir}/s.sock`, 0o600);
    try {
      assert.equal((await Deno.stat(`${dir}/s.sock`)).mode! & 0o777, 0o600);
      const accepting = listener.accept();
      const client = connectUnix(libc, `${dir}/s.sock`);
      const server = await accepting;
      assert.ok(server);
      try {
        const peer = server.peer();
        assert.equal(peer.pid, Deno.pid);
        assert.equal(peer.uid, Deno.uid());
        const memfd = libc.symbols.memfd_create(cString("sock-test"), 1);
        assert.ok(memfd >= 0);
        libc.symbols.write(memfd, new TextEncoder().encode("hello fd"), 8n);
        await server.send(new TextEncoder().encode('{"event":"X"}\n'), [memfd]);
        libc.symbols.close(memfd);
        const received = await client.receive();
        assert.ok(received);
        assert.equal(new TextDecoder().decode(received.data), '{"event":"X"}\n');
        assert.equal(received.fds.length, 1);
        const buffer = new Uint8Array(8);
        assert.equal(Number(libc.symbols.pread(received.fds[0]!, buffer, 8n, 0n)), 8);
        assert.equal(new TextDecoder().decode(buffer), "hello fd");
        closeFds(libc, received.fds);
        // A large message arrives whole (possibly in several reads).
        const big = new Uint8Array(300_000).fill(0x61);
        const sending = client.send(big);
        let total = 0;
        while (total < big.length) {
          const part = await server.receive();
          assert.ok(part);
          total += part.data.length;
        }
        await sending;
        assert.equal(total, big.length);
        // The peer closing ends the stream.
        await client.close();
        assert.equal(await server.receive(), null);
      } finally {
        await client.close();
        await server.close();
      }
    } finally {
      await listener.close();
    }
    assert.throws(
      () => connectUnix(libc, `${dir}/s.sock`),
      (error: unknown) => error instanceof SocketError && error.errno === "ENOENT",
    );
  });
});

Deno.test("closing ends a pending receive and a pending accept", async () => {
  using libc = openLibc();
  await withDir(async (dir) => {
    const listener = UnixListener.listen(libc, `${dir}/s.sock`, 0o600);
    const accepting = listener.accept();
    const client = connectUnix(libc, `${dir}/s.sock`);
    const server = (await accepting)!;
    const pending = server.receive();
    await server.close();
    assert.equal(await pending, null);
    await client.close();
    const idle = listener.accept();
    await listener.close();
    assert.equal(await idle, null);
  });
});

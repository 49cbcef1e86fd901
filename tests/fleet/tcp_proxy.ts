/**
 * A TCP proxy on loopback that a test controls, to cut one client off from an
 * etcd member (a partition) and to let it back: `stop()` closes the listener and
 * every connection through it; `start()` listens again on the same port.
 *
 * @module
 */

/** A running proxy. */
export class TcpProxy implements AsyncDisposable {
  readonly port: number;
  readonly #target: Deno.ConnectOptions;
  #listener: Deno.TcpListener | undefined;
  #accepting: Promise<void> | undefined;
  readonly #connections = new Set<Deno.TcpConn>();
  readonly #pipes = new Set<Promise<void>>();

  private constructor(target: Deno.ConnectOptions, listener: Deno.TcpListener) {
    this.#target = target;
    this.#listener = listener;
    this.port = listener.addr.port;
    this.#accepting = this.#accept(listener);
  }

  /** Starts a proxy to `target` on a port the kernel picks. */
  static start(target: Deno.ConnectOptions): TcpProxy {
    return new TcpProxy(target, Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  }

  /** The proxy's URL for `scheme`. */
  url(scheme = "http"): string {
    return `${scheme}://127.0.0.1:${this.port}`;
  }

  /** Whether it forwards now. */
  get up(): boolean {
    return this.#listener !== undefined;
  }

  async #accept(listener: Deno.TcpListener): Promise<void> {
    try {
      for await (const conn of listener) {
        this.#connections.add(conn);
        const pipe = this.#forward(conn).finally(() => this.#pipes.delete(pipe));
        this.#pipes.add(pipe);
      }
    } catch {
      // The listener was closed.
    }
  }

  async #forward(client: Deno.TcpConn): Promise<void> {
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect(this.#target);
    } catch {
      this.#close(client);
      return;
    }
    this.#connections.add(server);
    const copy = async (from: Deno.TcpConn, to: Deno.TcpConn) => {
      const buffer = new Uint8Array(16_384);
      try {
        for (;;) {
          const n = await from.read(buffer);
          if (n === null) break;
          let offset = 0;
          while (offset < n) offset += await to.write(buffer.subarray(offset, n));
        }
      } catch {
        // A side was closed.
      }
      this.#close(from);
      this.#close(to);
    };
    await Promise.all([copy(client, server), copy(server, client)]);
  }

  #close(conn: Deno.TcpConn): void {
    if (!this.#connections.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Cuts every connection and stops listening: the client is partitioned. */
  async stop(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.close();
    await this.#accepting;
    for (const conn of [...this.#connections]) this.#close(conn);
    await Promise.all([...this.#pipes]);
  }

  /** Listens again on the same port: the partition heals. */
  start(): void {
    if (this.#listener) return;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.#accepting = this.#accept(this.#listener);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

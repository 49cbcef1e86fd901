/**
 * An example client of the live-update session broker: a service that keeps
 * its state in a memfd (as a VMM keeps guest memory) and carries it across a
 * kernel live update.
 *
 *   preserve: fill a memfd with a known pattern, SUBSCRIBE as ID, and when the
 *             broker says START_PRESERVATION preserve the memfd into the session
 *             (token 1), say READY, close the session fd, and keep running like
 *             a service would (until SIGTERM). After CANCEL_PRESERVATION it
 *             closes any copy of the session it still holds (as every client
 *             must: a session stays preserved while an fd of it is open) and
 *             waits for the next attempt. With --never-ready it keeps the
 *             session fd and never says READY (to show a rollback).
 *   restore:  after the update, CLAIM session ID, retrieve token 1, check the
 *             contents, and FINISH.
 *
 * Reports progress as JSON lines on stdout. Needs root (the broker's socket) and
 * --allow-ffi --allow-read.
 *
 * Usage: deno run -A examples/memfd_client.ts preserve|restore --id ID
 *          [--socket PATH] [--size BYTES] [--seed N] [--never-ready]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { cString, type Libc, openLibc } from "../agent/host/libc.ts";
import { Session } from "../agent/kernel/mainline/session.ts";
import { BrokerClient } from "../agent/sessions/client.ts";

const MFD_CLOEXEC = 1;
const TOKEN = 1n;

function report(step: string, fields: Record<string, unknown> = {}): void {
  const line = new TextEncoder().encode(JSON.stringify({ step, ...fields }) + "\n");
  let done = 0;
  while (done < line.length) done += Deno.stdout.writeSync(line.subarray(done));
}

/** The state this service keeps: `size` bytes of a pattern seeded with `seed`. */
function pattern(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function memfdWith(libc: Libc, name: string, data: Uint8Array<ArrayBuffer>): number {
  const fd = libc.symbols.memfd_create(cString(name), MFD_CLOEXEC);
  if (fd < 0) throw new Error(`memfd_create failed: ${libc.errnoName()}`);
  let done = 0;
  while (done < data.length) {
    const chunk = data.subarray(done);
    const count = Number(libc.symbols.write(fd, chunk, BigInt(chunk.length)));
    if (count <= 0) throw new Error(`write failed: ${libc.errnoName()}`);
    done += count;
  }
  return fd;
}

function readAll(libc: Libc, fd: number, size: number): Uint8Array<ArrayBuffer> {
  const data = new Uint8Array(size);
  let done = 0;
  while (done < size) {
    const chunk = data.subarray(done);
    const count = Number(libc.symbols.pread(fd, chunk, BigInt(chunk.length), BigInt(done)));
    if (count < 0) throw new Error(`pread failed: ${libc.errnoName()}`);
    if (count === 0) break;
    done += count;
  }
  return data.subarray(0, done);
}

async function preserve(
  libc: Libc,
  socket: string,
  id: string,
  size: number,
  seed: number,
  neverReady: boolean,
) {
  const state = pattern(size, seed);
  const memfd = memfdWith(libc, `example-${id}`, state);
  const client = await connect(libc, socket, 120_000);
  const stop = new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", resolve));
  // Our copy of the session fd, while we hold one (only --never-ready keeps it).
  let held: Session | undefined;
  try {
    await client.subscribe(id);
    report("subscribed", { id, size, sha256: await sha256(state) });
    while (true) {
      const event = await Promise.race([client.next(), stop.then(() => null)]);
      if (!event) break;
      if (event.event === "START_PRESERVATION" && event.fd !== undefined) {
        const session = new Session(libc, event.fd, id, "outgoing");
        session.preserveFd(memfd, TOKEN);
        report("preserved", { id, token: Number(TOKEN) });
        if (neverReady) {
          report("holding-back", { id });
          // Keep the session fd open and never answer.
          held = session;
          continue;
        }
        await client.ready(id);
        // The broker holds the session from here; our copy is not needed.
        session.close();
        report("ready", { id });
      } else if (event.event === "CANCEL_PRESERVATION") {
        // The update was abandoned: close our copy too, so nothing stays preserved
        // (a session is unpreserved once its last fd is closed).
        held?.close();
        held = undefined;
        report("cancelled", { id, reason: event.reason });
      } else if (event.event === "ERROR") {
        report("error", { id, message: event.message });
      }
    }
  } finally {
    held?.close();
    await client.close();
    libc.symbols.close(memfd);
  }
}

/** Connects, waiting up to `wait` ms for the broker to come up (services may start first). */
async function connect(libc: Libc, socket: string, wait: number): Promise<BrokerClient> {
  const deadline = performance.now() + wait;
  while (true) {
    try {
      return BrokerClient.connect(libc, socket);
    } catch (error) {
      const errno = (error as { errno?: string }).errno;
      const retry = errno === "ENOENT" || errno === "ECONNREFUSED";
      if (!retry || performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function restore(libc: Libc, socket: string, id: string, size: number, seed: number) {
  const client = await connect(libc, socket, 120_000);
  try {
    const session = await client.claim(id);
    report("claimed", { id });
    const fd = session.retrieveFd(TOKEN);
    const data = readAll(libc, fd, size + 1);
    const expected = await sha256(pattern(size, seed));
    const actual = await sha256(data);
    const intact = data.length === size && actual === expected;
    report("verified", { id, intact, size: data.length, sha256: actual });
    session.close();
    await client.finish(id);
    report("finished", { id });
    libc.symbols.close(fd);
    if (!intact) Deno.exit(1);
  } finally {
    await client.close();
  }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      socket: { type: "string", default: "/run/liveupdate/sessions.sock" },
      id: { type: "string" },
      size: { type: "string", default: String(4 * 1024 * 1024) },
      seed: { type: "string", default: "1" },
      "never-ready": { type: "boolean", default: false },
    },
  });
  const mode = positionals[0];
  if (!values.id || (mode !== "preserve" && mode !== "restore")) {
    report("usage", {
      message: "memfd_client.ts preserve|restore --id ID [--size N] [--seed N]",
    });
    Deno.exit(2);
  }
  using libc = openLibc();
  try {
    if (mode === "preserve") {
      await preserve(
        libc,
        values.socket,
        values.id,
        Number(values.size),
        Number(values.seed),
        values["never-ready"],
      );
    } else {
      await restore(libc, values.socket, values.id, Number(values.size), Number(values.seed));
    }
  } catch (error) {
    report("failed", {
      id: values.id,
      error: error instanceof Error ? error.message : String(error),
    });
    Deno.exit(1);
  }
}

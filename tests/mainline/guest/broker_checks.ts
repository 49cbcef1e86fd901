/**
 * The session broker on the real 7.3 kernel, across a real KHO kexec, with the
 * agent's real processes: `liveupdate-agent sessions serve` as the broker and
 * examples/memfd_client.ts as its clients.
 *
 * Boot 1: a client that never says READY makes preparation roll back (every
 * session unpreserved once its holders close it); then three clients ("vm-1",
 * "db-1", "orphan-1") preserve memfds, the barrier succeeds, the clients are
 * killed (as systemd's shutdown would) while the broker keeps the sessions, and
 * the guest kexecs with the broker still holding them.
 * Boot 2: a new broker takes the record over; "vm-1" and "db-1" are claimed,
 * verified and finished by their clients; "orphan-1" is never claimed and is
 * finished and reported when the claim time is up.
 *
 * @module
 */

import { permissionFlags } from "../../../agent/build/permissions.ts";
import { openLibc } from "../../../agent/host/libc.ts";
import { realClock } from "../../../agent/host/real_host.ts";
import { LiveupdateDevice } from "../../../agent/kernel/mainline/device.ts";
import { prepareSessions, sessionsStatus } from "../../../agent/sessions/client.ts";
import { BrokerClient } from "../../../agent/sessions/client.ts";
import { readRecord } from "../../../agent/sessions/record.ts";
import { kexecFileLoad, nextCmdline, rebootIntoLoadedKernel } from "./guest_libc.ts";
import { bootNumber, check, emit, ensure } from "./report.ts";

const SOCKET = "/run/liveupdate/sessions.sock";
const STATE_DIR = "/var/lib/liveupdate";
const CLAIM_TIMEOUT_S = 30;
const CLIENTS = [
  { id: "vm-1", size: 4 * 1024 * 1024, seed: 11 },
  { id: "db-1", size: 1024 * 1024 + 7, seed: 22 },
  { id: "orphan-1", size: 64 * 1024, seed: 33 },
];

const libc = openLibc();
const boot = bootNumber();
const device = new LiveupdateDevice({
  libc,
  clock: realClock,
  path: "/dev/liveupdate",
  busyTimeout: 5000,
});
const encoder = new TextEncoder();

/** A child deno process whose stdout JSON lines are collected. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  readonly done: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    args: string[],
    permissions: readonly string[] = ["--allow-all"],
  ) {
    this.process = new Deno.Command("/usr/bin/deno", {
      args: ["run", ...permissions, "--cached-only", "--no-check", ...args],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>, parse: boolean) => {
      let pending = "";
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        pending += decoder.decode(chunk, { stream: true });
        let newline;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          Deno.stdout.writeSync(encoder.encode(`[${this.name}] ${line}\n`));
          if (parse) {
            try {
              this.lines.push(JSON.parse(line));
            } catch {
              // Not a report line.
            }
            for (const waiter of this.#waiters.splice(0)) waiter();
          }
        }
      }
    };
    this.done = Promise.all([pump(this.process.stdout, true), pump(this.process.stderr, false)])
      .then(() => {
        for (const waiter of this.#waiters.splice(0)) waiter();
      });
  }

  /** Waits until a report line with `step` arrives (or the process ends). */
  async waitFor(step: string, timeout = 60_000): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeout;
    while (true) {
      const line = this.lines.find((l) => l.step === step);
      if (line) return line;
      const ended = await Promise.race([
        new Promise<boolean>((resolve) => this.#waiters.push(() => resolve(false))),
        this.process.status.then(() => true),
        new Promise<boolean>((resolve) =>
          setTimeout(() => resolve(true), Math.max(0, deadline - performance.now()))
        ),
      ]);
      if (ended) {
        const again = this.lines.find((l) => l.step === step);
        if (again) return again;
        throw new Error(`${this.name}: no "${step}" (${JSON.stringify(this.lines)})`);
      }
    }
  }

  async stop(): Promise<Deno.CommandStatus> {
    try {
      this.process.kill("SIGTERM");
    } catch {
      // Already ended.
    }
    const status = await this.process.status;
    await this.done;
    return status;
  }
}

/**
 * The broker, under the agent's own permission flags (agent/build/permissions.ts):
 * the device node, procfs and debugfs go through libc, which Deno does not
 * path-check (Deno's file API would demand --allow-all for them).
 */
function startBroker(): Child {
  return new Child(
    "broker",
    ["agent/main.ts", "--log-format=text", "sessions", "serve"],
    permissionFlags(),
  );
}

async function waitForSocket(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if (Deno.statSync(SOCKET).isSocket) return;
    } catch {
      // Not yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${SOCKET} never appeared`);
}

function client(mode: "preserve" | "restore", spec: typeof CLIENTS[number], extra: string[] = []) {
  return new Child(`${mode}:${spec.id}`, [
    "examples/memfd_client.ts",
    mode,
    "--socket",
    SOCKET,
    "--id",
    spec.id,
    "--size",
    String(spec.size),
    "--seed",
    String(spec.seed),
    ...extra,
  ]);
}

/** Whether the kernel still has an outgoing session of this name (create answers EEXIST). */
async function sessionExists(name: string): Promise<boolean> {
  try {
    const session = await device.createSession(name);
    session.close();
    return false;
  } catch (error) {
    if ((error as { errno?: string }).errno === "EEXIST") return true;
    throw error;
  }
}

function writeConfig(): void {
  Deno.mkdirSync("/run/liveupdate/config.d", { recursive: true });
  Deno.writeTextFileSync(
    "/run/liveupdate/config.d/50-guest.toml",
    [
      "[paths]",
      `state_dir = "${STATE_DIR}"`,
      "[sessions]",
      `claim_timeout = "${CLAIM_TIMEOUT_S}s"`,
      'ready_timeout = "2min"',
      "",
    ].join("\n"),
  );
}

async function bootOne(): Promise<void> {
  writeConfig();
  const broker = startBroker();
  await check(boot, "broker-starts", async () => {
    await waitForSocket();
    const mode = (Deno.statSync(SOCKET).mode ?? 0) & 0o777;
    ensure(mode === 0o600, `socket mode ${mode.toString(8)}`);
    const status = await sessionsStatus(libc, SOCKET);
    ensure(status.phase === "idle", `phase ${status.phase}`);
    return { mode: mode.toString(8), status };
  });

  // Rollback: one client never reports READY.
  const stuck = client("preserve", { id: "stuck-1", size: 4096, seed: 5 }, ["--never-ready"]);
  const good = client("preserve", CLIENTS[0]!);
  await check(boot, "rollback-when-a-client-is-not-ready", async () => {
    await stuck.waitFor("subscribed");
    await good.waitFor("subscribed");
    const started = performance.now();
    const result = await prepareSessions(libc, SOCKET, 15_000);
    const ms = Math.round(performance.now() - started);
    ensure(!result.ok, "preparation succeeded although a client never said READY");
    // stuck-1 held it up; vm-1 is named too only if it was slower than the timeout.
    ensure(
      result.clients.some((c) => c.id === "stuck-1" && c.problem === "not-ready") &&
        result.clients.every((c) => c.problem === "not-ready"),
      `clients ${JSON.stringify(result.clients)}`,
    );
    await good.waitFor("cancelled");
    await stuck.waitFor("cancelled");
    const status = await sessionsStatus(libc, SOCKET);
    ensure(status.phase === "idle", `phase ${status.phase} after the rollback`);
    let record = true;
    try {
      Deno.statSync(`${STATE_DIR}/sessions.json`);
    } catch {
      record = false;
    }
    ensure(!record, "a record was left behind");
    return { ms, reason: result.ok ? "" : result.reason };
  });

  await check(boot, "rollback-unpreserves", async () => {
    // The broker closed its copies and every client closed its own on
    // CANCEL_PRESERVATION (stuck-1's client too, while it keeps running): the kernel
    // has no session of those names any more.
    ensure(!await sessionExists("vm-1"), "vm-1 is still preserved after the rollback");
    const stuckAfterCancel = await sessionExists("stuck-1");
    await stuck.stop();
    ensure(!stuckAfterCancel, "stuck-1 is still preserved after the rollback");
    return { vm1: "unpreserved", stuck1WhileClientRuns: "unpreserved" };
  });

  await check(boot, "subscribe-refusals", async () => {
    const probe = BrokerClient.connect(libc, SOCKET);
    const refusal = async (id: string) => {
      try {
        await probe.subscribe(id);
        return "subscribed";
      } catch (error) {
        return (error as { errno?: string }).errno ?? String(error);
      }
    };
    try {
      const taken = await refusal("vm-1");
      const invalid = await refusal("x".repeat(64));
      ensure(taken === "EEXIST", `taken id: ${taken}`);
      ensure(invalid === "EINVAL", `64-byte id: ${invalid}`);
      return { taken, invalid };
    } finally {
      await probe.close();
    }
  });

  // The update: three clients, all ready.
  const others = [client("preserve", CLIENTS[1]!), client("preserve", CLIENTS[2]!)];
  const clients = [good, ...others];
  await check(boot, "prepare-barrier", async () => {
    for (const c of others) await c.waitFor("subscribed");
    const started = performance.now();
    const result = await prepareSessions(libc, SOCKET, 60_000);
    const ms = Math.round(performance.now() - started);
    ensure(result.ok, `not prepared: ${JSON.stringify(result)}`);
    ensure(result.sessions.length === 3, `sessions ${result.sessions}`);
    for (const c of clients) await c.waitFor("ready");
    const record = await readRecord(STATE_DIR);
    ensure(record?.phase === "prepared", `record ${JSON.stringify(record)}`);
    ensure(record.liveupdateNumber === 1, `recorded liveupdate number ${record.liveupdateNumber}`);
    return { ms, sessions: result.sessions };
  });

  await check(boot, "broker-holds-sessions-without-clients", async () => {
    for (const c of clients) await c.stop();
    const held = [];
    for (const spec of CLIENTS) held.push([spec.id, await sessionExists(spec.id)]);
    ensure(held.every(([, exists]) => exists), `held: ${JSON.stringify(held)}`);
    return { held: Object.fromEntries(held) };
  });

  const loaded = await check(boot, "kexec-file-load", () => {
    kexecFileLoad(libc, "/boot/bzImage", "/sys/firmware/initrd", nextCmdline(2));
    return { loaded: true };
  });
  if (!loaded) {
    await broker.stop();
    return;
  }
  emit({ type: "kexec", boot });
  // The broker is still running and holding every session.
  rebootIntoLoadedKernel(libc);
}

async function bootTwo(): Promise<void> {
  writeConfig();
  // The services come up first and wait for the broker, as they would at boot.
  const restores = CLIENTS.slice(0, 2).map((spec) => client("restore", spec));
  const broker = startBroker();
  try {
    await check(boot, "broker-takes-over-record", async () => {
      await waitForSocket();
      const status = await sessionsStatus(libc, SOCKET);
      const names = status.incoming.map((i) => i.name).sort();
      ensure(names.join() === "db-1,orphan-1,vm-1", `incoming ${JSON.stringify(status.incoming)}`);
      ensure(
        status.incoming.every((i) => i.outcome !== "lost" && i.outcome !== "finished-unclaimed"),
        `incoming ${JSON.stringify(status.incoming)}`,
      );
      return { incoming: status.incoming };
    });

    for (const restore of restores) {
      await check(boot, `claim-${restore.name.split(":")[1]}`, async () => {
        const verified = await restore.waitFor("verified", 120_000);
        await restore.waitFor("finished");
        const status = await restore.process.status;
        await restore.done;
        ensure(verified.intact === true, `contents: ${JSON.stringify(verified)}`);
        ensure(status.code === 0, `restore exited ${status.code}`);
        return verified;
      });
    }

    await check(boot, "claim-unknown-session", async () => {
      const probe = BrokerClient.connect(libc, SOCKET);
      try {
        await probe.claim("never-existed");
        throw new Error("claim of an unknown session succeeded");
      } catch (error) {
        const errno = (error as { errno?: string }).errno;
        ensure(errno === "ENOENT", `errno ${errno}: ${error}`);
        return { errno, message: (error as Error).message };
      } finally {
        await probe.close();
      }
    });

    await check(boot, "unclaimed-session-finished-and-reported", async () => {
      const deadline = performance.now() + (CLAIM_TIMEOUT_S + 60) * 1000;
      while (performance.now() < deadline) {
        const record = await readRecord(STATE_DIR);
        if (record?.phase === "done") {
          const outcomes = Object.fromEntries(record.sessions.map((s) => [s.name, s.outcome]));
          ensure(outcomes["vm-1"] === "finished", `outcomes ${JSON.stringify(outcomes)}`);
          ensure(outcomes["db-1"] === "finished", `outcomes ${JSON.stringify(outcomes)}`);
          ensure(
            outcomes["orphan-1"] === "finished-unclaimed",
            `outcomes ${JSON.stringify(outcomes)}`,
          );
          // And the kernel no longer has it: a late claim is refused.
          const late = BrokerClient.connect(libc, SOCKET);
          try {
            await late.claim("orphan-1").then(() => {
              throw new Error("late claim succeeded");
            }, (error) => ensure(error.errno === "ENOENT", `late claim: ${error}`));
          } finally {
            await late.close();
          }
          return { outcomes, record };
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      throw new Error("the record never reached phase done");
    });
  } finally {
    const status = await broker.stop();
    emit({ type: "broker-exit", boot, code: status.code });
  }
}

try {
  emit({ type: "boot", boot });
  if (boot === 1) await bootOne();
  else await bootTwo();
  emit({ type: "done", boot });
} finally {
  libc.close();
}

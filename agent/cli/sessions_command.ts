/**
 * `liveupdate-agent sessions`: the session broker for mainline kernels
 * (/dev/liveupdate). `serve` runs it (the liveupdate-sessions.service daemon);
 * `status`, `prepare` and `abort` ask the running broker.
 *
 * @module
 */

import { AgentError, UsageError } from "../errors.ts";
import { SocketError } from "../sessions/unix_socket.ts";
import { BrokerRequestError } from "../sessions/client.ts";
import { ExitCode } from "../exit_codes.ts";
import { openLibc } from "../host/libc.ts";
import { kernelContext } from "../kernel/select.ts";
import { probeMainline } from "../kernel/mainline/backend.ts";
import { LiveupdateDevice } from "../kernel/mainline/device.ts";
import { KernelUnsupportedError } from "../kernel/kernel_error.ts";
import { isKhoTree, readKhoTree } from "../kernel/mainline/kho.ts";
import { procFactsOf } from "./platform.ts";
import { SessionBroker } from "../sessions/broker.ts";
import { abortSessions, prepareSessions, sessionsStatus } from "../sessions/client.ts";
import { notify } from "../sessions/notify.ts";
import type { Config } from "../config/mod.ts";
import type { Command, CommandContext } from "./command.ts";

/** The broker's socket path from the configuration. */
export function sessionsSocket(config: Config): string {
  return config.sessions.socket || `${config.paths.runtime_dir}/sessions.sock`;
}

async function serve(context: CommandContext): Promise<ExitCode> {
  const { host, log, loaded, platform } = context;
  const config = loaded.config;
  const kernelFs = platform.kernelFs();
  // The device node, procfs and debugfs through the kernel's files (libc); the
  // device itself is opened only for the moment of each request.
  const probe = probeMainline(kernelContext(config, { fs: kernelFs, libc: platform.libc, log }));
  if (!probe.usable) {
    throw new KernelUnsupportedError(
      `${config.kernel.device} does not exist: this kernel has no mainline live update (Linux ` +
        '6.19+ with CONFIG_LIVEUPDATE, booted with "kho=on liveupdate=on"); there are no ' +
        `sessions to broker. (${probe.summary})`,
      probe.missing,
    );
  }
  using libc = openLibc();
  const device = new LiveupdateDevice({
    libc,
    clock: host.clock,
    path: config.kernel.device,
    busyTimeout: config.sessions.device_busy_timeout,
  });
  const socketPath = sessionsSocket(config);
  await host.fs.mkdir(socketPath.slice(0, socketPath.lastIndexOf("/")) || "/", {
    recursive: true,
    mode: 0o755,
  });
  const bootId = procFactsOf(platform, config).bootId();
  const broker = await SessionBroker.start({
    libc,
    device,
    clock: host.clock,
    log: log.with({ component: "sessions" }),
    fs: kernelFs,
    proc: config.paths.proc,
    socketPath,
    stateDir: config.paths.state_dir,
    readyTimeout: config.sessions.ready_timeout,
    claimTimeout: config.sessions.claim_timeout,
    bootId,
    liveupdateNumber: () => {
      const tree = readKhoTree(kernelFs, config.paths.debugfs, "out");
      return Promise.resolve(isKhoTree(tree) ? tree.luo?.liveupdateNumber ?? null : null);
    },
  });
  log.notice(`Session broker listening on ${socketPath}.`);
  notify(libc, host.env.get("NOTIFY_SOCKET"), "READY=1\nSTATUS=Brokering live-update sessions");
  await new Promise<void>((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGTERM", stop);
      Deno.removeSignalListener("SIGINT", stop);
      resolve();
    };
    Deno.addSignalListener("SIGTERM", stop);
    Deno.addSignalListener("SIGINT", stop);
  });
  notify(libc, host.env.get("NOTIFY_SOCKET"), "STOPPING=1");
  const held = broker.status();
  if (held.phase === "prepared") {
    log.warning(
      "Stopping the session broker releases the sessions it holds for the kexec; they are " +
        "unpreserved. (Before a kexec, systemd-shutdown leaves this process alone.)",
    );
  }
  await broker.close();
  return ExitCode.Success;
}

/** Asks the running broker; a broker that is not there is an operator-facing error. */
async function ask<T>(socketPath: string, request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    if (error instanceof SocketError && ["ENOENT", "ECONNREFUSED"].includes(error.errno)) {
      throw new AgentError(
        `The session broker is not running (nothing listens on ${socketPath}); start ` +
          "liveupdate-sessions.service (mainline kernels only).",
        { cause: error },
      );
    }
    if (error instanceof SocketError || error instanceof BrokerRequestError) {
      throw new AgentError(`The session broker at ${socketPath} refused: ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** Runs and asks the session broker. */
export const sessionsCommand: Command = {
  name: "sessions",
  summary: "Broker live-update sessions to client services (mainline kernels).",
  description: [
    "serve    run the broker (liveupdate-sessions.service): clients subscribe on its",
    "         socket, preserve their memfds into the session it hands them, and claim it",
    "         back after the kexec",
    "status   show the running broker's subscribers and sessions",
    "prepare  the update's barrier: hand every subscriber its session and wait until",
    "         all are ready (--timeout), or roll back; exit 6 when rolled back",
    "abort    roll back a preparation: every session is closed and unpreserved",
  ].join("\n"),
  positionals: ["serve|status|prepare|abort"],
  options: {
    json: { type: "boolean", description: "Print JSON." },
    timeout: { type: "string", value: "MS", description: "prepare: wait this many ms for READY." },
    reason: { type: "string", value: "TEXT", description: "abort: the reason to log." },
  },
  async run(context, args) {
    const action = args.positionals[0];
    const { host, loaded } = context;
    const socketPath = sessionsSocket(loaded.config);
    const print = (value: unknown, text: string) =>
      host.stdout.write(args.values.json ? JSON.stringify(value, null, 2) + "\n" : text + "\n");
    switch (action) {
      case "serve":
        return await serve(context);
      case "status": {
        using libc = openLibc();
        const status = await ask(socketPath, () => sessionsStatus(libc, socketPath));
        print(
          status,
          [
            `Session broker on ${status.socket}: ${status.phase}`,
            ...status.subscribers.map((s) => `  subscriber ${s.id} (pid ${s.pid}): ${s.state}`),
            ...status.incoming.map((i) =>
              `  from the previous kernel: ${i.name}: ${i.outcome}${
                i.detail ? ` (${i.detail})` : ""
              }`
            ),
          ].join("\n"),
        );
        return ExitCode.Success;
      }
      case "prepare": {
        const raw = args.values.timeout as string | undefined;
        const timeout = raw === undefined ? undefined : Number(raw);
        if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 0)) {
          throw new UsageError(`--timeout must be a whole number of milliseconds, not "${raw}"`);
        }
        using libc = openLibc();
        const result = await ask(socketPath, () => prepareSessions(libc, socketPath, timeout));
        print(
          result,
          result.ok
            ? `Prepared: ${result.sessions.length} session(s) held for the kexec` +
              (result.sessions.length ? `: ${result.sessions.join(", ")}` : "")
            : `Rolled back: ${result.reason}\n` +
              result.clients.map((c) => `  ${c.id}: ${c.problem} (${c.detail})`).join("\n"),
        );
        return result.ok ? ExitCode.Success : ExitCode.RolledBack;
      }
      case "abort": {
        using libc = openLibc();
        const reason = (args.values.reason as string | undefined) ?? "aborted by the operator";
        await ask(socketPath, () => abortSessions(libc, socketPath, reason));
        print({ aborted: true }, "Aborted: every prepared session was closed.");
        return ExitCode.Success;
      }
      default:
        throw new UsageError(
          `sessions needs one of serve, status, prepare, abort${action ? `, not "${action}"` : ""}`,
        );
    }
  },
};

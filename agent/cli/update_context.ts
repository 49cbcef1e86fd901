/**
 * Building the update flows' context from a command's context: the real layers,
 * wired to the configuration and the host.
 *
 * @module
 */

import { assessCompatibility } from "../compat/mod.ts";
import { AgentError } from "../errors.ts";
import { KexecTools } from "../kexec/mod.ts";
import { kernelContext, openKernel } from "../kernel/mod.ts";
import { abortSessions, prepareSessions, sessionsStatus } from "../sessions/client.ts";
import { readRecord } from "../sessions/record.ts";
import { SocketError } from "../sessions/unix_socket.ts";
import { AttemptStore } from "../store/mod.ts";
import {
  connectSystemd,
  type KexecTrigger,
  managerKexec,
  type SystemdManager,
} from "../systemd/mod.ts";
import { acquireUpdateLock, type SessionsControl, type UpdateContext } from "../update/mod.ts";
import { VERSION } from "../version.ts";
import type { CommandContext } from "./command.ts";
import { procFactsOf } from "./platform.ts";
import { sessionsSocket } from "./sessions_command.ts";

const startedAt = new Date();

/** The kexec trigger the configuration asks for. */
function trigger(context: CommandContext, manager: SystemdManager): KexecTrigger {
  const { config } = context.loaded;
  if (config.kexec.issue === "systemd") return managerKexec(manager, "clean");
  const [program, ...args] = config.kexec.issue_command;
  return {
    async kexec() {
      const result = await context.host.processes.run(program!, args);
      if (result.code !== 0) {
        throw new AgentError(
          `kexec.issue_command "${program}" failed (exit ${result.code}): ` +
            `${result.stderr.trim().split("\n").at(-1) ?? ""}`,
        );
      }
    },
  };
}

/** Test hook: LIVEUPDATE_AGENT_CRASH_AT="<step>:<status>" kills the agent right after that journal write. */
function crashHook(context: CommandContext) {
  const at = context.host.env.get("LIVEUPDATE_AGENT_CRASH_AT");
  if (!at) return undefined;
  return (step: string, status: string) => {
    if (`${step}:${status}` !== at) return;
    context.log.warning(`LIVEUPDATE_AGENT_CRASH_AT=${at}: killing the agent here (test hook).`);
    const libc = context.platform.libc();
    libc.symbols.kill(libc.symbols.getpid(), 9);
  };
}

/** The session broker (mainline kernels) as the update flow drives it. */
function sessionsControl(context: CommandContext): SessionsControl {
  const { config } = context.loaded;
  const { platform, log } = context;
  const socket = sessionsSocket(config);
  return {
    socket,
    status: () => sessionsStatus(platform.libc(), socket),
    prepare: (timeout) => prepareSessions(platform.libc(), socket, timeout),
    async abort(reason) {
      try {
        await abortSessions(platform.libc(), socket, reason);
      } catch (error) {
        // A broker that is not running holds no session: its fds closed with it.
        if (error instanceof SocketError && ["ENOENT", "ECONNREFUSED"].includes(error.errno)) {
          log.info(`The session broker is not running (${socket}); it holds no sessions.`);
          return;
        }
        throw error;
      }
    },
    record: () => readRecord(config.paths.state_dir),
  };
}

/**
 * The update context of a command. Connects to systemd lazily, once; the caller
 * closes it with the returned `close()`.
 */
export function createUpdateContext(
  context: CommandContext,
): { update: UpdateContext; close(): Promise<void> } {
  const { config } = context.loaded;
  const { host, log, platform } = context;
  const deviceFs = platform.kernelFs();
  let manager: Promise<SystemdManager> | undefined;
  const onJournal = crashHook(context);
  const facts = procFactsOf(platform, config);
  const update: UpdateContext = {
    config,
    log,
    clock: host.clock,
    fs: host.fs,
    store: new AttemptStore(host.fs, config.paths.state_dir, config.store.history),
    facts,
    openKernel: () =>
      openKernel(
        kernelContext(config, { fs: deviceFs, libc: platform.libc, log }),
        config.kernel.backend,
      ),
    systemd: () => manager ??= connectSystemd(host, config),
    deviceFs,
    deviceLayer: (kernel) => ({ fs: deviceFs, hostFs: host.fs, kernel, log }),
    kexec: new KexecTools(host.processes, deviceFs, {
      binary: config.kexec.binary,
      sysfs: config.paths.sysfs,
      timeoutMs: config.kexec.load_timeout,
    }),
    kexecTrigger: (m) => trigger(context, m),
    compat: (kernel) =>
      assessCompatibility({
        fs: host.fs,
        releases: { osRelease: () => facts.osRelease() },
        config,
        ...(kernel ? { backend: kernel.backend } : {}),
        ...(kernel?.sessions ? { outgoing: kernel.sessions.kho("out") } : {}),
      }),
    sessions: sessionsControl(context),
    lock: () => {
      try {
        Deno.mkdirSync(config.paths.runtime_dir, { recursive: true, mode: 0o700 });
      } catch {
        // acquireUpdateLock names the problem.
      }
      return acquireUpdateLock(platform.libc(), `${config.paths.runtime_dir}/update.lock`);
    },
    agentVersion: VERSION,
    startedAt,
    ...(onJournal ? { onJournal } : {}),
  };
  return {
    update,
    async close() {
      if (manager) await (await manager.catch(() => undefined))?.close();
    },
  };
}

/**
 * Building the update flows' context from a command's context: the real layers,
 * wired to the configuration and the host.
 *
 * @module
 */

import { assessCompatibility } from "../compat/mod.ts";
import { AgentError, describeError } from "../errors.ts";
import { createFleet, type FleetCoordinator } from "../fleet/mod.ts";
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

function isSymlink(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSymlink;
  } catch {
    return false;
  }
}

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
 * How a command uses the fleet layer (`fleet.backend`): "required" — a fleet that
 * cannot be set up stops the command (prepare: nothing changes without the
 * slot); "optional" — it is logged and the command goes on without it, leaving
 * the slot as it is (finish must finish the kernel in any case); "none".
 */
export type FleetUse = "required" | "optional" | "none";

/** The fleet coordinator of the configuration, as `use` asks for it. */
async function fleetFor(
  context: CommandContext,
  use: FleetUse,
): Promise<FleetCoordinator | undefined> {
  if (use === "none") return undefined;
  let hostname: string | undefined;
  try {
    hostname = procFactsOf(context.platform, context.loaded.config).hostname();
  } catch (error) {
    context.log.debug(`The host name is unknown: ${describeError(error)}`);
  }
  try {
    return await createFleet(context.loaded.config, context.host, context.log, {
      ...(hostname ? { hostname } : {}),
    });
  } catch (error) {
    if (use === "required") throw error;
    context.log.error(
      `The fleet layer cannot be set up (${describeError(error)}); going on without it. ` +
        "This host's fleet slot stays as it is: free it with 'liveupdate-agent fleet release' " +
        "once the configuration is fixed.",
    );
    return undefined;
  }
}

/**
 * The update context of a command. Connects to systemd lazily, once; sets up
 * the fleet coordinator (`fleet.backend`) as `options.fleet` says (default
 * "optional"). The caller closes it with the returned `close()`.
 */
export async function createUpdateContext(
  context: CommandContext,
  options: { fleet?: FleetUse } = {},
): Promise<{ update: UpdateContext; close(): Promise<void> }> {
  const { config } = context.loaded;
  const { host, log, platform } = context;
  const fleet = await fleetFor(context, options.fleet ?? "optional");
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
      const dir = config.paths.runtime_dir;
      // A symlink there would carry the lock file (and its O_CREAT) elsewhere.
      if (isSymlink(dir)) {
        throw new AgentError(
          `The runtime directory "${dir}" (paths.runtime_dir) is a symlink; the agent keeps ` +
            "its lock only in a real directory. Replace the link with a directory.",
        );
      }
      try {
        Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      } catch {
        // acquireUpdateLock names the problem.
      }
      return acquireUpdateLock(platform.libc(), `${dir}/update.lock`);
    },
    ...(fleet ? { fleet } : {}),
    agentVersion: VERSION,
    startedAt,
    ...(onJournal ? { onJournal } : {}),
  };
  return {
    update,
    async close() {
      try {
        if (manager) await (await manager.catch(() => undefined))?.close();
      } finally {
        fleet?.close();
      }
    },
  };
}

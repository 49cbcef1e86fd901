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
import { AttemptStore } from "../store/mod.ts";
import {
  connectSystemd,
  type KexecTrigger,
  managerKexec,
  type SystemdManager,
} from "../systemd/mod.ts";
import { acquireUpdateLock, type UpdateContext } from "../update/mod.ts";
import { VERSION } from "../version.ts";
import type { CommandContext } from "./command.ts";
import { procFactsOf } from "./platform.ts";

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
    compat: () =>
      assessCompatibility({
        fs: host.fs,
        releases: { osRelease: () => facts.osRelease() },
        config,
      }),
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

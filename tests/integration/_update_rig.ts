/**
 * A rehearsal host for the update flows' integration tests, on the rehearsal's
 * machine (`agent/rehearsal/stage.ts`: the simulated LUO kernel with a device
 * tree, its udev database, a private systemd manager with the agent's phase
 * targets, a kexec-tools stand-in the test controls, a `/proc` the test controls,
 * kernel metadata and a configuration root): this adds the tests' sample services
 * and phases and helpers to drive and inspect it. The agent's own wiring (the CLI's
 * update context) is used unchanged; only the kexec trigger of `context()` is the
 * simulator's, called in-process (CLI runs use the stage's `issue-kexec`).
 *
 * @module
 */

import { createUpdateContext } from "../../agent/cli/update_context.ts";
import { loadConfig } from "../../agent/config/mod.ts";
import { createLogger } from "../../agent/log/mod.ts";
import {
  createTestHost,
  type FileSystem,
  type Libc,
  libcKernelFs,
  openLibc,
  type TestHost,
} from "../../agent/host/mod.ts";
import { SystemdManager } from "../../agent/systemd/mod.ts";
import { dbusNextConnector } from "../../agent/systemd/dbus_next.ts";
import type { AttemptRecord } from "../../agent/store/mod.ts";
import { acquireUpdateLock, BusyError, type UpdateContext } from "../../agent/update/mod.ts";
import { type KexecBehaviour, startStage } from "../../agent/rehearsal/stage.ts";
import { ensureSimBuilt, type Sim } from "../sim/harness.ts";
import type { SimTree } from "../sim/tree.ts";
import type { PrivateSystemd } from "../systemd/harness.ts";
import { phaseTargetFiles } from "../systemd/test_units.ts";

/** The running and the target kernel of the rehearsal. */
export { RUNNING_RELEASE, TARGET_RELEASE } from "../../agent/rehearsal/stage.ts";
export type { KexecBehaviour } from "../../agent/rehearsal/stage.ts";

/** A simple tree: one root port with two vfio functions (one tagged), one unsupported port. */
export function smallTree(): SimTree {
  const port = "pci0000:00/0000:00:01.0";
  const bad = "pci0000:00/0000:00:02.0";
  const vfio = (path: string, tagged: boolean, unit?: string) => ({
    path,
    subsystem: "pci",
    driver: "vfio-pci",
    busSupport: true,
    driverSupport: true,
    uevent: { DRIVER: "vfio-pci", PCI_ID: "15b3:101e", PCI_SLOT_NAME: path.split("/").at(-1)! },
    ...(tagged ? { tags: ["liveupdate"] } : {}),
    ...(unit ? { udevProperties: { LIVEUPDATE_UNIT: unit } } : {}),
  });
  return {
    devices: [
      { path: "pci0000:00", busSupport: true, driverSupport: true, uevent: {} },
      {
        path: port,
        subsystem: "pci",
        driver: "pcieport",
        busSupport: true,
        driverSupport: true,
        uevent: { DRIVER: "pcieport" },
      },
      vfio(`${port}/0000:01:00.0`, true, "vm-a.service"),
      vfio(`${port}/0000:01:00.1`, true, "vm-b.service"),
      vfio(`${port}/0000:01:00.2`, false),
      {
        path: bad,
        subsystem: "pci",
        driver: "pcieport",
        busSupport: false,
        driverSupport: true,
        uevent: { DRIVER: "pcieport" },
      },
      vfio(`${bad}/0000:02:00.0`, false),
    ],
  };
}

/** The selected devices of {@link smallTree} and the ancestors preserved with them. */
export const SMALL = {
  selected: ["pci0000:00/0000:00:01.0/0000:01:00.0", "pci0000:00/0000:00:01.0/0000:01:00.1"],
  ancestors: ["pci0000:00", "pci0000:00/0000:00:01.0"],
  untagged: "pci0000:00/0000:00:01.0/0000:01:00.2",
  unsupported: "pci0000:00/0000:00:02.0/0000:02:00.0",
};

/** Sample services: a VMM that runs, a checkpoint and a restore (oneshot), a noisy neighbour. */
export function sampleUnits(): Record<string, string> {
  return {
    "vmm.service": "[Service]\nExecStart=/bin/sleep infinity\n",
    "checkpoint.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    "restore.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    "broken.service": "[Service]\nType=oneshot\nExecStart=/bin/false\n",
    "slow.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sleep 30\n",
    "needs-broken.service":
      "[Unit]\nRequires=broken.service\nAfter=broken.service\n[Service]\nExecStart=/bin/sleep infinity\n",
    "hooked.service":
      "[Unit]\nPartOf=liveupdate-prepare.target\n[Service]\nType=oneshot\nRemainAfterExit=yes\n" +
      "ExecStart=/bin/true\n[Install]\nWantedBy=liveupdate-prepare.target\n",
  };
}

/** Options of {@link startUpdateRig}. */
export interface RigOptions {
  tree?: SimTree;
  /** TOML appended to the rig's scenario drop-in (after the phases it writes). */
  config?: string;
  /** LUO versions of the two kernels ("" = no metadata file). */
  runningVersion?: string;
  targetVersion?: string;
  /** The command line the running kernel reports. */
  cmdline?: string;
  /** The kexec stand-in's exit code for loads (and an optional delay in seconds). */
  kexecExit?: number;
  kexecSleep?: number;
}

/** Options of {@link UpdateRig.context}. */
export interface RigContextOptions {
  onJournal?: UpdateContext["onJournal"];
  /** Wraps the host's file system (fault injection: a full disk, a read-only directory). */
  fs?: (fs: FileSystem) => FileSystem;
  /** Replaces the simulated kexec the trigger issues (a KExec call that fails). */
  trigger?: () => Promise<void>;
}

/** The rehearsal host. */
export interface UpdateRig extends AsyncDisposable {
  sim: Sim;
  systemd: PrivateSystemd;
  dir: string;
  configRoot: string;
  stateDir: string;
  proc: string;
  /** The metrics file the agent writes (metrics.file). */
  metricsFile: string;
  /** The kexec stand-in's log (one line per call: its arguments). */
  kexecLog(): Promise<string[]>;
  /** Whether a kexec kernel is loaded (a load succeeded and no unload or reboot followed). */
  kexecLoaded(): Promise<boolean>;
  /** Changes how the kexec stand-in answers loads. */
  setKexec(behaviour: KexecBehaviour): Promise<void>;
  /** Writes the drop-in `60-case.toml` after the rig's own ("" removes it). */
  setConfig(toml: string): Promise<void>;
  /**
   * Writes (or, with `undefined`, removes) the drop-in `<name>.toml` after the
   * rig's own, so a test can override any setting (later drop-ins win).
   */
  dropIn(name: string, toml: string | undefined): Promise<void>;
  /** Writes (or with "" removes) the LUO version metadata of the running and the target kernel. */
  setVersions(running: string, target: string): Promise<void>;
  /** The running kernel's command line as `<proc>/cmdline` reports it. */
  setCmdline(cmdline: string): Promise<void>;
  /** The path of the update lock. */
  lockPath: string;
  /** Whether some process holds the update lock. */
  lockHeld(): boolean;
  /** A fresh update context (as `liveupdate-agent` builds it) with the simulator's kexec. */
  context(options?: RigContextOptions): Promise<RigContext>;
  /** An ActiveState per unit, through the manager. */
  unitStates(names: readonly string[]): Promise<Record<string, string>>;
  /** Starts units (the test's own way to set the scene). */
  start(...units: string[]): Promise<void>;
  /** The device's flags in the simulated kernel. */
  flags(path: string): Promise<{ requested: boolean; preserved: boolean; reclaimed: boolean }>;
  /** The simulated kexec: the next boot, and the release `/proc` reports afterwards. */
  kexec(options?: { fallback?: boolean }): ReturnType<Sim["kexec"]>;
  /** The newest attempt record. */
  record(): Promise<AttemptRecord | undefined>;
  /** The directory a CLI run uses as `--config-root`, with the environment for a subprocess. */
  cliArgs(...args: string[]): string[];
  libc: Libc;
}

/** A context and its host, closed with `close()`. */
export interface RigContext {
  update: UpdateContext;
  host: TestHost;
  /** How many times the kexec was issued. */
  kexecCalls: () => number;
  close(): Promise<void>;
}

async function write(path: string, text: string): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, text);
}

/** Starts a rehearsal host. Dispose of it with `await using`. */
export async function startUpdateRig(options: RigOptions = {}): Promise<UpdateRig> {
  const tree = options.tree ?? smallTree();
  const stage = await startStage({
    simulator: await ensureSimBuilt(),
    tree,
    units: { ...await phaseTargetFiles(), ...sampleUnits() },
    config: [
      "[devices]",
      'reclaim_timeout = "2s"',
      "[phases.prepare]",
      'stop = ["vmm.service"]',
      'start = ["checkpoint.service"]',
      'timeout = "30s"',
      "[phases.updated]",
      'start = ["restore.service", "vmm.service"]',
      'timeout = "30s"',
      "[phases.cancel]",
      'start = ["vmm.service"]',
      'timeout = "30s"',
      "",
    ].join("\n") + (options.config ?? ""),
    prefix: "liveupdate-update-it",
    ...(options.runningVersion !== undefined ? { runningVersion: options.runningVersion } : {}),
    ...(options.targetVersion !== undefined ? { targetVersion: options.targetVersion } : {}),
    ...(options.cmdline !== undefined ? { cmdline: options.cmdline } : {}),
    ...(options.kexecExit !== undefined ? { kexecExit: options.kexecExit } : {}),
    ...(options.kexecSleep !== undefined ? { kexecSleep: options.kexecSleep } : {}),
  });
  const libc = openLibc();
  try {
    const { dir, configRoot, stateDir, proc } = stage;
    const theSim = stage.sim;
    const theSystemd = stage.systemd;
    const lockPath = `${stage.runtimeDir}/update.lock`;
    const rig: UpdateRig = {
      sim: theSim,
      systemd: theSystemd,
      dir,
      configRoot,
      stateDir,
      proc,
      metricsFile: stage.metricsFile,
      libc,
      lockPath,
      lockHeld() {
        try {
          Deno.statSync(lockPath);
        } catch {
          return false; // never taken
        }
        try {
          acquireUpdateLock(libc, lockPath).release();
          return false;
        } catch (error) {
          if (error instanceof BusyError) return true;
          throw error;
        }
      },
      kexecLoaded: () => stage.kexecLoaded(),
      setKexec: (behaviour: KexecBehaviour) => stage.setKexec(behaviour),
      async setConfig(toml) {
        const file = `${configRoot}/etc/liveupdate/config.d/60-case.toml`;
        if (toml) await write(file, toml);
        else await Deno.remove(file).catch(() => {});
      },
      async dropIn(name, toml) {
        const file = `${configRoot}/etc/liveupdate/config.d/${name}.toml`;
        if (toml === undefined) await Deno.remove(file).catch(() => {});
        else await write(file, toml);
      },
      setVersions: (running, target) => stage.setVersions(running, target),
      setCmdline: (cmdline) => stage.setCmdline(cmdline),
      kexecLog: () => stage.kexecLog(),
      async context(contextOptions = {}) {
        const loaded = await loadConfig(Deno, { root: configRoot });
        const host = createTestHost({ dbus: dbusNextConnector });
        if (contextOptions.fs) host.fs = contextOptions.fs(host.fs);
        const log = createLogger({
          output: host.stderr,
          format: "text",
          clock: host.clock,
          level: "debug",
        });
        const built = await createUpdateContext({
          host,
          log,
          loaded,
          configRoot,
          platform: { libc: () => libc, kernelFs: () => libcKernelFs(libc) },
        });
        let calls = 0;
        const update: UpdateContext = {
          ...built.update,
          kexecTrigger: () => ({
            kexec: async () => {
              calls++;
              if (contextOptions.trigger) await contextOptions.trigger();
              else await rig.kexec();
            },
          }),
          ...(contextOptions.onJournal ? { onJournal: contextOptions.onJournal } : {}),
        };
        return { update, host, kexecCalls: () => calls, close: built.close };
      },
      async unitStates(names) {
        await using manager = await SystemdManager.connect(
          dbusNextConnector,
          theSystemd.busAddress,
        );
        const statuses = await manager.unitStatuses(names);
        return Object.fromEntries(statuses.map((s) => [s.name, s.activeState]));
      },
      async start(...units) {
        const result = await theSystemd.systemctl(["start", ...units]);
        if (result.code !== 0) {
          throw new Error(`systemctl start ${units.join(" ")}: ${result.stderr}`);
        }
      },
      async flags(path) {
        const read = async (flag: string) =>
          (await Deno.readTextFile(theSim.device(path, `liveupdate/${flag}`))).trim() === "1";
        return {
          requested: await read("requested"),
          preserved: await read("preserved"),
          reclaimed: await read("reclaimed"),
        };
      },
      kexec: (kexecOptions) => stage.kexec(kexecOptions),
      async record() {
        const names: string[] = [];
        try {
          for await (const e of Deno.readDir(`${stateDir}/attempts`)) {
            if (e.name.endsWith(".json")) names.push(e.name);
          }
        } catch {
          return undefined;
        }
        const newest = names.sort().at(-1);
        return newest
          ? JSON.parse(await Deno.readTextFile(`${stateDir}/attempts/${newest}`))
          : undefined;
      },
      cliArgs(...args) {
        return [
          "run",
          "-A",
          "--cached-only",
          new URL("../../agent/main.ts", import.meta.url).pathname,
          ...args,
          `--config-root=${configRoot}`,
        ];
      },
      async [Symbol.asyncDispose]() {
        try {
          await stage.stop();
        } finally {
          libc.close();
        }
      },
    };
    return rig;
  } catch (error) {
    libc.close();
    await stage.stop().catch(() => {});
    throw error;
  }
}

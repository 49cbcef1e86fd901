/**
 * A rehearsal host for the update flows' integration tests: the simulated LUO
 * kernel (FUSE) with a device tree, its udev database, a private systemd manager
 * with the agent's phase targets and sample services, a kexec-tools stand-in that
 * records what it was asked, a `/proc` directory the test controls (command line,
 * release, uptime), kernel metadata for both kernels, and a configuration root
 * pointing the agent at all of it. The agent's own wiring (the CLI's update
 * context) is used unchanged; only the kexec trigger is the simulator's.
 *
 * @module
 */

import { createUpdateContext } from "../../agent/cli/update_context.ts";
import { loadConfig } from "../../agent/config/mod.ts";
import { createLogger } from "../../agent/log/mod.ts";
import {
  createTestHost,
  type Libc,
  libcKernelFs,
  openLibc,
  type TestHost,
} from "../../agent/host/mod.ts";
import { SystemdManager } from "../../agent/systemd/mod.ts";
import { dbusNextConnector } from "../../agent/systemd/dbus_next.ts";
import type { AttemptRecord } from "../../agent/store/mod.ts";
import type { UpdateContext } from "../../agent/update/mod.ts";
import { fakeBzImage } from "../kho/bzimage.ts";
import { type Sim, startSim } from "../sim/harness.ts";
import { type SimTree, writeUdevDb } from "../sim/tree.ts";
import { type PrivateSystemd, startPrivateSystemd } from "../systemd/harness.ts";
import { phaseTargetFiles } from "../systemd/test_units.ts";

/** The running and the target kernel of the rehearsal. */
export const RUNNING_RELEASE = "6.19.0-lu-old";
export const TARGET_RELEASE = "6.19.1-lu-new";

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
  /** TOML appended to the rig's drop-in (after the defaults it writes). */
  config?: string;
  /** LUO versions of the two kernels ("" = no metadata file). */
  runningVersion?: string;
  targetVersion?: string;
  /** The command line the running kernel reports. */
  cmdline?: string;
  /** The kexec stand-in's exit code for loads (and an optional delay). */
  kexecExit?: number;
  kexecSleep?: number;
}

/** The rehearsal host. */
export interface UpdateRig extends AsyncDisposable {
  sim: Sim;
  systemd: PrivateSystemd;
  dir: string;
  configRoot: string;
  stateDir: string;
  proc: string;
  /** The kexec stand-in's log (one line per call: its arguments). */
  kexecLog(): Promise<string[]>;
  /** A fresh update context (as `liveupdate-agent` builds it) with the simulator's kexec. */
  context(options?: { onJournal?: UpdateContext["onJournal"] }): Promise<RigContext>;
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
  /**
   * Writes (or, with `undefined`, removes) the drop-in `<name>.toml` after the
   * rig's own, so a test can override any setting (later drop-ins win).
   */
  dropIn(name: string, toml: string | undefined): Promise<void>;
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

async function write(path: string, text: string | Uint8Array, mode?: number): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof text === "string") await Deno.writeTextFile(path, text);
  else await Deno.writeFile(path, text);
  if (mode !== undefined) await Deno.chmod(path, mode);
}

/** Starts a rehearsal host. Dispose of it with `await using`. */
export async function startUpdateRig(options: RigOptions = {}): Promise<UpdateRig> {
  const tree = options.tree ?? smallTree();
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-update-it-" });
  const libc = openLibc();
  let sim: Sim | undefined;
  let systemd: PrivateSystemd | undefined;
  try {
    sim = await startSim({ tree });
    systemd = await startPrivateSystemd({
      units: { ...await phaseTargetFiles(), ...sampleUnits() },
    });
    const udev = `${dir}/udev`;
    await writeUdevDb(tree, udev);
    const proc = `${dir}/proc`;
    await write(
      `${proc}/cmdline`,
      options.cmdline ?? "BOOT_IMAGE=/vmlinuz root=/dev/vda ro liveupdate=on kho=on\n",
    );
    await write(`${proc}/sys/kernel/osrelease`, `${RUNNING_RELEASE}\n`);
    await write(`${proc}/uptime`, "1234.56 2000.00\n");
    const modules = `${dir}/modules`;
    const runningVersion = options.runningVersion ?? "1.0";
    const targetVersion = options.targetVersion ?? "1.0";
    if (runningVersion) {
      await write(
        `${modules}/${RUNNING_RELEASE}/liveupdate-abi`,
        `LUO_VERSION=${runningVersion}\n`,
      );
    }
    if (targetVersion) {
      await write(`${modules}/${TARGET_RELEASE}/liveupdate-abi`, `LUO_VERSION=${targetVersion}\n`);
    }
    const kernel = `${dir}/boot/vmlinuz-${TARGET_RELEASE}`;
    await write(kernel, fakeBzImage({ version: `${TARGET_RELEASE} (rig@test) #1 SMP` }));
    await write(`${dir}/boot/initrd.img-${TARGET_RELEASE}`, "initrd");
    const kexec = `${dir}/bin/kexec`;
    await write(
      kexec,
      `#!/bin/sh\necho "$@" >> "${dir}/kexec.log"\n` +
        (options.kexecSleep ? `sleep ${options.kexecSleep}\n` : "") +
        `case "$1 $2" in "-s -l") exit ${options.kexecExit ?? 0};; esac\nexit 0\n`,
      0o755,
    );
    // The kexec of kexec.issue = "command": the simulator reboots; after a live
    // reboot the fake /proc reports the target kernel (as rig.kexec() does).
    const issue = `${dir}/bin/issue-kexec`;
    await write(
      issue,
      `#!/bin/sh\nprintf kexec > "${sim.root}/.luo-sim/control"\n` +
        `if [ "$(cat "${sim.root}/kernel/liveupdate/state")" = updated ]; then\n` +
        `  echo ${TARGET_RELEASE} > "${proc}/sys/kernel/osrelease"\n` +
        `  echo "3.50 6.00" > "${proc}/uptime"\nfi\n`,
      0o755,
    );
    const configRoot = `${dir}/root`;
    const stateDir = `${dir}/state`;
    await write(
      `${configRoot}/etc/liveupdate/config.d/50-rig.toml`,
      [
        "[paths]",
        `sysfs = "${sim.root}"`,
        `proc = "${proc}"`,
        `udev_db = "${udev}"`,
        `debugfs = "${dir}/debugfs"`,
        `state_dir = "${stateDir}"`,
        `runtime_dir = "${dir}/run"`,
        "[systemd]",
        `bus_address = "${systemd.busAddress}"`,
        "[target]",
        `kernel = "${kernel}"`,
        `initrd = "${dir}/boot/initrd.img-${TARGET_RELEASE}"`,
        "[compat]",
        `modules_dir = "${modules}"`,
        "[kexec]",
        `binary = "${kexec}"`,
        'issue = "command"',
        `issue_command = ["${issue}"]`,
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
    );
    const theSim = sim;
    const theSystemd = systemd;
    const rig: UpdateRig = {
      sim: theSim,
      systemd: theSystemd,
      dir,
      configRoot,
      stateDir,
      proc,
      libc,
      async kexecLog() {
        try {
          return (await Deno.readTextFile(`${dir}/kexec.log`)).trim().split("\n").filter(Boolean);
        } catch {
          return [];
        }
      },
      async context(contextOptions = {}) {
        const loaded = await loadConfig(Deno, { root: configRoot });
        const host = createTestHost({ dbus: dbusNextConnector });
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
              await rig.kexec();
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
      async kexec(kexecOptions) {
        const result = await theSim.kexec(kexecOptions);
        if (result.reboot === "live") {
          await Deno.writeTextFile(`${proc}/sys/kernel/osrelease`, `${TARGET_RELEASE}\n`);
          await Deno.writeTextFile(`${proc}/uptime`, "3.50 6.00\n");
        }
        return result;
      },
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
      async dropIn(name, toml) {
        const path = `${configRoot}/etc/liveupdate/config.d/${name}.toml`;
        if (toml === undefined) await Deno.remove(path).catch(() => {});
        else await write(path, toml);
      },
      async [Symbol.asyncDispose]() {
        try {
          await theSystemd.stop();
        } finally {
          try {
            await theSim.stop();
          } finally {
            libc.close();
            await Deno.remove(dir, { recursive: true }).catch(() => {});
          }
        }
      },
    };
    return rig;
  } catch (error) {
    await systemd?.stop().catch(() => {});
    await sim?.stop().catch(() => {});
    libc.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

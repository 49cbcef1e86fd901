/**
 * The rehearsal's machine: everything a live update touches, simulated or private,
 * in one temporary directory — the simulated LUO kernel (FUSE) with a device tree,
 * the matching udev database, a private systemd manager with the agent's phase
 * targets and the scenario's services, a `/proc` the stage controls (command line,
 * release, uptime), kernel metadata for both kernels, a target kernel image,
 * kexec-tools stand-ins, optionally the KHO handover in a debugfs directory, and a
 * configuration root pointing the agent at all of it.
 * The agent then runs unchanged against it (`--config-root=<stage.configRoot>`).
 *
 * The kexec: the agent's `kexec.issue = "command"` runs `bin/issue-kexec`, which
 * makes the simulated kernel reboot (its control file, `kexec`) and, when the
 * kernel comes back in state `updated`, "boots" the target: `/proc` then reports
 * the target's release and a fresh uptime. Loading and unloading the target
 * (`kexec.binary`) is `bin/kexec`, which records its arguments in `kexec.log`.
 *
 * Used by the demo command and, through tests/integration/_update_rig.ts, the
 * update flows' integration tests. Needs root and `--allow-all` in practice.
 *
 * @module
 */

import { type RebootResult, type Sim, startSimulator } from "./simulator.ts";
import { type PrivateSystemd, startPrivateSystemd } from "./private_systemd.ts";
import { fakeBzImage } from "./boot_image.ts";
import { khoTree, khoTreeWithoutLuo, versionProperty } from "./fdt_builder.ts";
import { type SimTree, writeUdevDb } from "./tree.ts";

/** The running and the target kernel of a stage, unless the options say otherwise. */
export const RUNNING_RELEASE = "6.19.0-lu-old";
export const TARGET_RELEASE = "6.19.1-lu-new";

/** How the kexec stand-in answers loads (`kexec -s -l`). */
export interface KexecBehaviour {
  /** Exit code of a load (default 0: loaded). */
  exit?: number;
  /** Seconds a load takes before it ends as `exit` says. */
  sleep?: number;
  /** The load never ends (it must be killed: the agent's load timeout). */
  hang?: boolean;
}

/** Options of {@link startStage}. */
export interface StageOptions {
  /** The simulator binary (see `findSimulator`). */
  simulator: string;
  tree: SimTree;
  /**
   * Unit files for the private manager (the phase targets among them), or a
   * function of the stage's directory that returns them.
   */
  units: Readonly<Record<string, string>> | ((dir: string) => Record<string, string>);
  /** Files to write before the manager starts: path below the stage's directory → contents. */
  files?: (dir: string) => Record<string, { text: string; mode?: number }>;
  /** TOML of the scenario (phases, devices, …), written as a later drop-in (55-scenario.toml). */
  config?: string;
  /** LUO versions of the two kernels ("" = no metadata file). Default "1.0" both. */
  runningVersion?: string;
  targetVersion?: string;
  /** The command line the running kernel reports. */
  cmdline?: string;
  /** The exit code of the kexec stand-in for loads, and a delay in seconds. */
  kexecExit?: number;
  kexecSleep?: number;
  /** Prefix of the stage's directory and its private manager's run name. */
  prefix?: string;
  /** The private manager's log level. */
  systemdLogLevel?: "debug" | "info";
  /**
   * Simulate the KHO handover in `<dir>/debugfs/kho/in/fdt` (`paths.debugfs`): a
   * tree without the orchestrator node before the kexec, and the running kernel's
   * LUO version in it after a live one. Off by default (no debugfs).
   */
  handover?: boolean;
}

/** A running stage. Dispose of it with `await using` or {@link Stage.stop}. */
export interface Stage extends AsyncDisposable {
  sim: Sim;
  systemd: PrivateSystemd;
  /** The stage's directory (everything below it is the stage's). */
  dir: string;
  /** The agent's `--config-root`. */
  configRoot: string;
  /** `paths.state_dir`: the agent's records. */
  stateDir: string;
  /** `paths.runtime_dir`. */
  runtimeDir: string;
  /** `paths.proc`: the files the stage controls. */
  proc: string;
  /** `metrics.file`. */
  metricsFile: string;
  runningRelease: string;
  targetRelease: string;
  /** The kexec stand-in's log (one line per call: its arguments). */
  kexecLog(): Promise<string[]>;
  /** Whether a kexec kernel is loaded (a load succeeded and no unload or reboot followed). */
  kexecLoaded(): Promise<boolean>;
  /** Changes how the kexec stand-in answers loads. */
  setKexec(behaviour: KexecBehaviour): Promise<void>;
  /** Writes (or with "" removes) the LUO version metadata of the running and the target kernel. */
  setVersions(running: string, target: string): Promise<void>;
  /** The running kernel's command line as `<proc>/cmdline` reports it. */
  setCmdline(cmdline: string): Promise<void>;
  /** The simulated kexec, as `bin/issue-kexec` runs it: the next boot, and /proc after it. */
  kexec(options?: { fallback?: boolean }): Promise<RebootResult>;
  /**
   * Stops the manager and the simulator and removes the directory (unless
   * `keepDir`: then configuration, records, metrics and logs stay for a look).
   */
  stop(options?: { keepDir?: boolean }): Promise<void>;
}

async function write(path: string, text: string | Uint8Array, mode?: number): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof text === "string") await Deno.writeTextFile(path, text);
  else await Deno.writeFile(path, text);
  if (mode !== undefined) await Deno.chmod(path, mode);
}

/** A single-quoted shell word. */
function sh(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** A TOML basic string. */
function toml(text: string): string {
  return JSON.stringify(text);
}

/**
 * Starts a stage: the simulator, the private manager, and the files. Needs root,
 * `--allow-run`, `--allow-read` and `--allow-write`.
 */
export async function startStage(options: StageOptions): Promise<Stage> {
  const prefix = options.prefix ?? "liveupdate-stage";
  const dir = await Deno.makeTempDir({ prefix: `${prefix}-` });
  const runningRelease = RUNNING_RELEASE;
  const targetRelease = TARGET_RELEASE;
  let sim: Sim | undefined;
  let systemd: PrivateSystemd | undefined;
  try {
    for (const [path, file] of Object.entries(options.files?.(dir) ?? {})) {
      await write(`${dir}/${path}`, file.text, file.mode);
    }
    sim = await startSimulator({
      binary: options.simulator,
      tree: options.tree,
      prefix: `${prefix}-sim-`,
    });
    systemd = await startPrivateSystemd({
      units: typeof options.units === "function" ? options.units(dir) : options.units,
      prefix: `${prefix}-systemd`,
      ...(options.systemdLogLevel ? { logLevel: options.systemdLogLevel } : {}),
    });
    const udev = `${dir}/udev`;
    await writeUdevDb(options.tree, udev);
    const proc = `${dir}/proc`;
    await write(
      `${proc}/cmdline`,
      options.cmdline ?? "BOOT_IMAGE=/vmlinuz root=/dev/vda ro liveupdate=on kho=on\n",
    );
    await write(`${proc}/sys/kernel/osrelease`, `${runningRelease}\n`);
    await write(`${proc}/uptime`, "1234.56 2000.00\n");
    const modules = `${dir}/modules`;
    const runningVersion = options.runningVersion ?? "1.0";
    const setVersions = async (running: string, target: string) => {
      for (const [release, version] of [[runningRelease, running], [targetRelease, target]]) {
        const file = `${modules}/${release}/liveupdate-abi`;
        if (version) await write(file, `LUO_VERSION=${version}\n`);
        else await Deno.remove(file).catch(() => {});
      }
    };
    await setVersions(runningVersion, options.targetVersion ?? "1.0");
    const handover = `${dir}/kho-handover.fdt`;
    if (options.handover) {
      const [major = 1, minor = 0] = (runningVersion || "1.0").split(".").map(Number);
      await write(`${dir}/debugfs/kho/in/fdt`, khoTreeWithoutLuo());
      await write(handover, khoTree(versionProperty(major, minor)));
    }
    const kernel = `${dir}/boot/vmlinuz-${targetRelease}`;
    await write(kernel, fakeBzImage({ version: `${targetRelease} (rehearsal@stage) #1 SMP` }));
    const initrd = `${dir}/boot/initrd.img-${targetRelease}`;
    await write(initrd, "initrd");
    // The kexec stand-in: logs its arguments, keeps "loaded" in a file, and answers
    // loads as the files kexec.{exit,sleep,hang} say (see setKexec).
    const kexec = `${dir}/bin/kexec`;
    await write(
      kexec,
      [
        "#!/bin/sh",
        "# Stands in for kexec-tools: records its arguments and whether a kernel is loaded.",
        `d=${sh(dir)}`,
        'echo "$@" >> "$d/kexec.log"',
        'case "$1 $2" in',
        '"-s -l")',
        '  if [ -f "$d/kexec.hang" ]; then exec sleep 600; fi',
        '  if [ -f "$d/kexec.sleep" ]; then sleep "$(cat "$d/kexec.sleep")"; fi',
        '  code=$(cat "$d/kexec.exit" 2>/dev/null || echo 0)',
        '  if [ "$code" = 0 ]; then : > "$d/kexec.loaded"; else',
        '    echo "kexec_file_load failed: Invalid argument" >&2; fi',
        '  exit "$code";;',
        '"-s -u") rm -f "$d/kexec.loaded"; exit 0;;',
        "esac",
        "exit 0",
        "",
      ].join("\n"),
      0o755,
    );
    const setKexec = async (behaviour: KexecBehaviour) => {
      for (const name of ["exit", "sleep", "hang"]) {
        await Deno.remove(`${dir}/kexec.${name}`).catch(() => {});
      }
      if (behaviour.exit) await write(`${dir}/kexec.exit`, `${behaviour.exit}\n`);
      if (behaviour.sleep) await write(`${dir}/kexec.sleep`, `${behaviour.sleep}\n`);
      if (behaviour.hang) await write(`${dir}/kexec.hang`, "");
    };
    await setKexec({
      ...(options.kexecExit ? { exit: options.kexecExit } : {}),
      ...(options.kexecSleep ? { sleep: options.kexecSleep } : {}),
    });
    const issue = `${dir}/bin/issue-kexec`;
    await write(
      issue,
      [
        "#!/bin/sh",
        "# Stands in for systemd's kexec.target: reboot(2) for kexec on the simulated kernel,",
        "# then the next boot. When the kernel comes back updated, the target booted.",
        "set -e",
        `boot=$(cat ${sh(`${sim.root}/.luo-sim/boot_id`)})`,
        `printf kexec > ${sh(`${sim.root}/.luo-sim/control`)}`,
        "# A reboot (live, plain or cold) leaves no kexec kernel loaded.",
        `if [ "$(cat ${sh(`${sim.root}/.luo-sim/boot_id`)})" != "$boot" ]; then`,
        `  rm -f ${sh(`${dir}/kexec.loaded`)}`,
        "fi",
        `if [ "$(cat ${sh(`${sim.root}/kernel/liveupdate/state`)})" = updated ]; then`,
        `  echo ${sh(targetRelease)} > ${sh(`${proc}/sys/kernel/osrelease`)}`,
        `  echo "0.00 0.00" > ${sh(`${proc}/uptime`)}`,
        ...(options.handover ? [`  cp ${sh(handover)} ${sh(`${dir}/debugfs/kho/in/fdt`)}`] : []),
        "fi",
        "",
      ].join("\n"),
      0o755,
    );
    const configRoot = `${dir}/root`;
    const stateDir = `${dir}/state`;
    const runtimeDir = `${dir}/run`;
    const metricsFile = `${dir}/metrics/liveupdate.prom`;
    await Deno.mkdir(`${dir}/metrics`, { recursive: true });
    const dropIns = `${configRoot}/etc/liveupdate/config.d`;
    await write(
      `${dropIns}/50-stage.toml`,
      [
        "# The rehearsal's machine: every path the agent touches points into the stage.",
        "[paths]",
        `sysfs = ${toml(sim.root)}`,
        `proc = ${toml(proc)}`,
        `udev_db = ${toml(udev)}`,
        `debugfs = ${toml(`${dir}/debugfs`)}`,
        `state_dir = ${toml(stateDir)}`,
        `runtime_dir = ${toml(runtimeDir)}`,
        "[systemd]",
        `bus_address = ${toml(systemd.busAddress)}`,
        "[target]",
        `kernel = ${toml(kernel)}`,
        `initrd = ${toml(initrd)}`,
        "[compat]",
        `modules_dir = ${toml(modules)}`,
        "[kexec]",
        `binary = ${toml(kexec)}`,
        'issue = "command"',
        `issue_command = [${toml(issue)}]`,
        "[metrics]",
        `file = ${toml(metricsFile)}`,
        "",
      ].join("\n"),
    );
    if (options.config) await write(`${dropIns}/55-scenario.toml`, options.config);

    const theSim = sim;
    const theSystemd = systemd;
    let stopping: Promise<void> | undefined;
    const stop = (stopOptions: { keepDir?: boolean } = {}) =>
      stopping ??= (async () => {
        try {
          await theSystemd.stop();
        } finally {
          try {
            await theSim.stop();
          } finally {
            if (!stopOptions.keepDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
          }
        }
      })();
    return {
      sim: theSim,
      systemd: theSystemd,
      dir,
      configRoot,
      stateDir,
      runtimeDir,
      proc,
      metricsFile,
      runningRelease,
      targetRelease,
      async kexecLog() {
        try {
          return (await Deno.readTextFile(`${dir}/kexec.log`)).trim().split("\n").filter(Boolean);
        } catch {
          return [];
        }
      },
      async kexecLoaded() {
        try {
          await Deno.stat(`${dir}/kexec.loaded`);
          return true;
        } catch {
          return false;
        }
      },
      setKexec,
      setVersions,
      async setCmdline(cmdline) {
        await write(`${proc}/cmdline`, cmdline);
      },
      async kexec(kexecOptions) {
        const result = await theSim.kexec(kexecOptions);
        // A reboot (live, plain or cold) leaves no kexec kernel loaded; a kexec that
        // failed without the fallback leaves the old kernel running, with it loaded.
        if (result.reboot !== "failed" || result.fallback === "cold") {
          await Deno.remove(`${dir}/kexec.loaded`).catch(() => {});
        }
        if (result.reboot === "live") {
          await Deno.writeTextFile(`${proc}/sys/kernel/osrelease`, `${targetRelease}\n`);
          await Deno.writeTextFile(`${proc}/uptime`, "0.00 0.00\n");
          if (options.handover) await Deno.copyFile(handover, `${dir}/debugfs/kho/in/fdt`);
        }
        return result;
      },
      stop,
      [Symbol.asyncDispose]: () => stop(),
    };
  } catch (error) {
    await systemd?.stop().catch(() => {});
    await sim?.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

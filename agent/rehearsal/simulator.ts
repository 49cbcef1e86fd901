/**
 * Starts and stops the simulated LUO kernel (`luo-sim`, a FUSE daemon in C whose
 * sources are tests/sim/*.c) for the rehearsal (`liveupdate-agent demo`), the tests
 * (tests/sim/harness.ts wraps this) and by hand (tests/sim/cli.ts).
 *
 * ```ts
 * await using sim = await startSimulator({ binary, tree });
 * await Deno.writeTextFile(`${sim.root}/kernel/liveupdate/prepare`, "1");
 * await sim.kexec(); // → state "updated", preserved devices still preserved
 * ```
 *
 * Each simulator runs in the foreground inside
 * `unshare -m -p -f --kill-child --propagation private --mount-proc`, so its mount
 * exists only in that private mount namespace and one kill removes daemon and
 * mount together. Its standard input is a pipe from this process: should this
 * process die without stopping it, the pipe closes and the daemon exits. The
 * calling process stays outside and reaches the mount through
 * `/proc/<wrapper pid>/root/<mountpoint>`: {@link Sim.root} is that path, the
 * sysfs root to hand to the agent. Reads, writes (with the kernel's errno),
 * poll(2), directory listings and readlink all work through it. Processes in
 * another PID namespace (a private systemd manager's services) cannot use that
 * path: their /proc does not show the wrapper.
 *
 * One trap: `Deno.realPath` (realpath(3)) resolves the `/proc/<pid>/root` magic
 * link itself and returns a path in the HOST's namespace, where the mountpoint
 * is an empty directory. Resolve sysfs symlinks lexically instead: readLink,
 * then join the (relative) target with the link's directory and normalise `..`
 * ({@link resolveLexically} does that).
 *
 * The simulator's control channel is `<root>/.luo-sim/` (outside the ABI
 * paths): `control` takes one command per write and answers with a JSON reply
 * read back from the same open file; `events` is the event log (JSON lines);
 * `status` and `boot_id` are read-only. The methods of {@link Sim} wrap it.
 *
 * This module starts real processes directly (Deno.Command): it is the
 * rehearsal's machine, not a path the agent takes on a real host. Needs
 * `--allow-run` (unshare), `--allow-read`, `--allow-write` (a temp directory, the
 * control file) and root (FUSE mounts, namespaces).
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { errnoName } from "../host/errno.ts";
import { BUS_SUBSYSTEMS, type SimDevice, type SimTree, simTreeLine, simTreeText } from "./tree.ts";

/** A state of the live-update state machine. */
export type LuoState = "normal" | "prepared" | "updated";

/** Options of {@link startSimulator} (and the tests' `startSim`). */
export interface SimOptions {
  /** The device tree, or the path of a data file in tree.ts's format. */
  tree: SimTree | string;
  /** State changes wake pollers of kernel/liveupdate/state (false: RFC v1's bug). Default true. */
  notify?: boolean;
  /** LUO enabled (kernel/liveupdate and per-device liveupdate/ exist). Default true. */
  enabled?: boolean;
  /**
   * Registered subsystems in registration order, each `name:before|with|after`;
   * `devices` is the device layer. Default
   * `["kvm:before", "iommu:before", "devices:with", "interrupts:after"]`.
   */
  subsystems?: string[];
  /** Copy every event to the daemon's standard error (see {@link Sim.stderr}). */
  verbose?: boolean;
  /** The daemon's standard error: kept for {@link Sim.stderr} (default) or passed through. */
  stderr?: "capture" | "inherit";
  /** Prefix of the temporary directory (default "luo-sim-"). */
  prefix?: string;
}

/** One entry of the simulator's event log. */
export interface SimEvent {
  seq: number;
  boot: number;
  /**
   * `state`, `callback`, `device`, `warning`, `write`, `boot`, `reboot`,
   * `control`, `reclaimed`, `remove`, `add`, `uevent`.
   */
  type: string;
  /** PREPARE, REBOOT, FINISH or CANCEL (callback and device events). */
  event?: string;
  subsystem?: string;
  /** A device path below devices/. */
  device?: string;
  /** The errno of a failed callback or write. */
  errno?: string;
  /** "driver" or "bus": which callback of a device failed. */
  via?: string;
  from?: LuoState;
  to?: LuoState;
  notified?: boolean;
  message?: string;
  file?: string;
  value?: string | number;
  kind?: "live" | "plain" | "cold";
  state?: LuoState;
  bootId?: string;
  command?: string;
  result?: string;
  action?: string;
}

/** What a simulated reboot did. */
export interface RebootResult {
  /** live: kexec with devices preserved; plain: kexec of an unprepared kernel; failed: the LUO refused. */
  reboot: "live" | "plain" | "failed" | "cold";
  /** The REBOOT callback's errno (or EAGAIN) when it failed. */
  errno?: string;
  /** After a failure: "cold" (systemd fell back to a full reboot) or "none". */
  fallback?: "cold" | "none";
  boot: number;
  bootId: string;
  state: LuoState;
}

/** The simulator's status. */
export interface SimStatus {
  boot: number;
  bootId: string;
  state: LuoState;
  enabled: boolean;
  notify: boolean;
  devices: number;
  removed: number;
  eagain: number;
  rssKib: number;
  /** Open files whose poll(2) is blocked waiting for a wake-up. */
  pollers: number;
  /** Poll wake-ups the simulator has delivered to the kernel so far. */
  wakeups: number;
  events: number;
  eventsKept: number;
  subsystems: string[];
  failures: { event: string; errno: string; target: string }[];
}

/** Which callback a failure hits: a subsystem by name, or a device's callbacks. */
export type FailTarget = string | { device: string } | { driver: string } | { bus: string };

/** A control command the simulator refused. */
export class SimControlError extends Error {
  override name = "SimControlError";
  readonly errno: string;

  constructor(command: string, errno: string, message: string) {
    super(`luo-sim refused "${command}" (${errno}): ${message}`);
    this.errno = errno;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The simulator binary is not where it was looked for. */
export class SimulatorNotFoundError extends AgentError {
  override name = "SimulatorNotFoundError";
}

/**
 * Where the simulator binary is: `explicit` when given, else the first that
 * exists of the source checkout's `.build/sim/luo-sim` (when the agent runs from
 * source; `bash tests/sim/build.sh` builds it) and `/usr/libexec/liveupdate-agent/luo-sim`
 * (an OS image). Throws {@link SimulatorNotFoundError} naming where it looked.
 * Needs `--allow-read` on those paths.
 */
export function findSimulator(explicit?: string): string {
  const candidates: string[] = [];
  if (explicit) candidates.push(explicit);
  else {
    const here = new URL(import.meta.url);
    if (!Deno.build.standalone && here.protocol === "file:") {
      candidates.push(new URL("../../.build/sim/luo-sim", here).pathname);
    }
    candidates.push(IMAGE_SIMULATOR);
  }
  for (const candidate of candidates) {
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return candidate;
    } catch {
      // look further
    }
  }
  throw new SimulatorNotFoundError(
    `The simulated kernel (luo-sim) is not at ${candidates.map((c) => `"${c}"`).join(" or ")}. ` +
      "In a source checkout build it with 'bash tests/sim/build.sh' (needs gcc and libfuse3-dev; " +
      "'deno task demo' does both), or name it with --simulator=PATH.",
  );
}

/** Where an OS image holds the simulator. */
export const IMAGE_SIMULATOR = "/usr/libexec/liveupdate-agent/luo-sim";

/**
 * The errno name of an error from a Deno file operation: its `code`, or the
 * number in "(os error N)" for errnos Deno has no name for (ENODEV, EBUSY…).
 */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && code) return code;
  const match = /\(os error (\d+)\)/.exec(String((error as Error)?.message ?? ""));
  return match ? errnoName(Number(match[1])) : undefined;
}

/**
 * Sends one control command to the simulator whose sysfs root is `root` and
 * returns its reply. Throws {@link SimControlError} when it is refused.
 */
export async function simControl(root: string, command: string): Promise<Record<string, unknown>> {
  using file = await Deno.open(`${root}/.luo-sim/control`, { read: true, write: true });
  let failure: unknown;
  try {
    await file.write(encoder.encode(command));
  } catch (error) {
    failure = error;
  }
  await file.seek(0, Deno.SeekMode.Start);
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  for (;;) {
    const n = await file.read(buffer);
    if (n === null || n === 0) break;
    chunks.push(buffer.slice(0, n));
  }
  const text = decoder.decode(concat(chunks)).trim();
  if (!text) {
    throw failure ?? new Error(`luo-sim gave no reply to "${command}"`);
  }
  const reply = JSON.parse(text) as Record<string, unknown>;
  if (reply.ok !== true) {
    throw new SimControlError(
      command,
      String(reply.errno ?? errnoOf(failure)),
      String(reply.message ?? ""),
    );
  }
  return reply;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * Resolves `path` (relative to the sysfs root `root`, symlinks anywhere in it)
 * to the path relative to `root` it names, following symlinks lexically (see
 * the module doc for why `Deno.realPath` cannot be used). Needs `--allow-read`.
 */
export async function resolveLexically(root: string, path: string): Promise<string> {
  const done: string[] = [];
  const todo = path.split("/").filter((part) => part !== "" && part !== ".");
  let hops = 0;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    done.push(part);
    const info = await Deno.lstat(`${root}/${done.join("/")}`);
    if (!info.isSymlink) continue;
    if (++hops > 40) throw new Error(`Too many symlinks resolving ${path} below ${root}`);
    const target = await Deno.readLink(`${root}/${done.join("/")}`);
    if (target.startsWith("/")) throw new Error(`Absolute symlink ${target} in ${path}`);
    done.pop();
    todo.unshift(...target.split("/").filter((part) => part !== "" && part !== "."));
  }
  return done.join("/");
}

/** A running simulator. Dispose of it (`await using`) or call {@link Sim.stop}. */
export interface Sim extends AsyncDisposable {
  /** The sysfs root to use (`/proc/<pid>/root/<mountpoint>`). */
  readonly root: string;
  /** The mountpoint inside the simulator's mount namespace. */
  readonly mountpoint: string;
  /** The unshare wrapper's pid (in this namespace). */
  readonly pid: number;
  /** The daemon's pid (in this namespace). */
  readonly daemonPid: number;
  /** How long loading the tree took inside the daemon, in ms. */
  readonly loadMs: number;
  /** The daemon's standard error so far (the last 64 KiB; empty when inherited). */
  stderr(): string;
  /** Settles when the simulator's wrapper process has exited (for whatever reason). */
  readonly exited: Promise<Deno.CommandStatus>;
  /** `${root}/${relative}`. */
  path(relative: string): string;
  /** A device's directory, or a file in it (`device("pci0000:00", "liveupdate/requested")`). */
  device(path: string, file?: string): string;
  /** Sends a raw control command (see tests/sim/control.c). */
  control(command: string): Promise<Record<string, unknown>>;
  /**
   * reboot(2) for kexec and the next boot: from `prepared` the REBOOT callbacks
   * run and the next boot is `updated` with the preserved set kept; otherwise a
   * plain kexec (next boot `normal`, nothing preserved). If the LUO refuses
   * (a REBOOT callback failed, or the state lock was interrupted), the state
   * falls back to `normal` and, unless `fallback: false`, the host cold-boots
   * as systemd would.
   */
  kexec(options?: { fallback?: boolean }): Promise<RebootResult>;
  /** A cold reboot: the next boot is `normal` with nothing preserved. */
  reboot(): Promise<RebootResult>;
  /** The next PREPARE callback of `target` fails with `errno` ("EBUSY" or 16). */
  failNextPrepare(target: FailTarget, errno: string | number): Promise<void>;
  /** The next REBOOT callback of `target` fails with `errno`. */
  failNextReboot(target: FailTarget, errno: string | number): Promise<void>;
  /** The next `count` state-lock acquisitions are interrupted (writes fail with EAGAIN). */
  eagainNext(count?: number): Promise<void>;
  /** Sets (or clears) a device's `reclaimed` flag, as its driver would. */
  setReclaimed(device: string, reclaimed?: boolean): Promise<void>;
  /** Removes a device and everything below it; returns how many devices vanished. */
  removeDevice(device: string): Promise<number>;
  /** Adds a device (its parents must exist or become grouping directories). */
  addDevice(device: SimDevice): Promise<void>;
  /** Switches state-change wake-ups on (fixed) or off (RFC v1's bug). */
  setNotify(on: boolean): Promise<void>;
  /** The event log, optionally only the events after sequence number `since`. */
  events(options?: { since?: number }): Promise<SimEvent[]>;
  clearEvents(): Promise<void>;
  /** Drops pending callback failures and EAGAINs. */
  clearFailures(): Promise<void>;
  status(): Promise<SimStatus>;
  /**
   * Resolves once at least `count` open files have a poll(2) blocked in the
   * simulator (so a following change must wake them, not merely be seen).
   */
  pollersWaiting(count?: number): Promise<void>;
  /** This boot's id (changes at every simulated boot). */
  bootId(): Promise<string>;
  /**
   * Stops the simulator and checks that nothing is left: the daemon and the
   * wrapper are gone, no process refers to its directory, no mount of it is
   * visible here. Throws when something was left or the daemon failed.
   */
  stop(): Promise<void>;
}

function targetText(target: FailTarget): string {
  if (typeof target === "string") return target;
  if ("device" in target) return `device:${target.device}`;
  if ("driver" in target) return `driver:${target.driver}`;
  return `bus:${target.bus}`;
}

const STDERR_KEEP = 65536;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
const POLLER_FAILSAFE_MS = 30_000;

class SimProcess implements Sim {
  #stopping: Promise<void> | undefined;

  constructor(
    readonly root: string,
    readonly mountpoint: string,
    readonly pid: number,
    readonly daemonPid: number,
    readonly loadMs: number,
    private readonly dir: string,
    private readonly child: Deno.ChildProcess,
    private readonly pumps: Promise<unknown>,
    private readonly stderrText: () => string,
  ) {}

  stderr(): string {
    return this.stderrText();
  }

  get exited(): Promise<Deno.CommandStatus> {
    return this.child.status;
  }

  path(relative: string): string {
    return `${this.root}/${relative}`;
  }

  device(path: string, file?: string): string {
    return `${this.root}/devices/${path}${file ? `/${file}` : ""}`;
  }

  control(command: string): Promise<Record<string, unknown>> {
    return simControl(this.root, command);
  }

  async kexec(options: { fallback?: boolean } = {}): Promise<RebootResult> {
    const reply = await this.control(options.fallback === false ? "kexec nofallback" : "kexec");
    return reply as unknown as RebootResult;
  }

  async reboot(): Promise<RebootResult> {
    return await this.control("reboot") as unknown as RebootResult;
  }

  async failNextPrepare(target: FailTarget, errno: string | number): Promise<void> {
    await this.control(`fail PREPARE ${errno} ${targetText(target)}`);
  }

  async failNextReboot(target: FailTarget, errno: string | number): Promise<void> {
    await this.control(`fail REBOOT ${errno} ${targetText(target)}`);
  }

  async eagainNext(count = 1): Promise<void> {
    await this.control(`eagain ${count}`);
  }

  async setReclaimed(device: string, reclaimed = true): Promise<void> {
    await this.control(`${reclaimed ? "reclaim" : "unreclaim"} ${device}`);
  }

  async removeDevice(device: string): Promise<number> {
    return Number((await this.control(`remove ${device}`)).removed);
  }

  async addDevice(device: SimDevice): Promise<void> {
    await this.control(`add ${simTreeLine(device)}`);
  }

  async setNotify(on: boolean): Promise<void> {
    await this.control(`notify ${on ? "on" : "off"}`);
  }

  async events(options: { since?: number } = {}): Promise<SimEvent[]> {
    const text = await Deno.readTextFile(`${this.root}/.luo-sim/events`);
    const events = text.split("\n").filter(Boolean).map((line) => JSON.parse(line) as SimEvent);
    return options.since === undefined ? events : events.filter((e) => e.seq > options.since!);
  }

  async clearEvents(): Promise<void> {
    await this.control("clear-events");
  }

  async clearFailures(): Promise<void> {
    await this.control("clear-failures");
  }

  async status(): Promise<SimStatus> {
    return (await this.control("status")).status as SimStatus;
  }

  async pollersWaiting(count = 1): Promise<void> {
    const deadline = Date.now() + POLLER_FAILSAFE_MS;
    while ((await this.status()).pollers < count) {
      if (Date.now() > deadline) {
        throw new Error(`No ${count} blocked poll(2) callers in the simulator after 30 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  async bootId(): Promise<string> {
    return (await Deno.readTextFile(`${this.root}/.luo-sim/boot_id`)).trim();
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #stop(): Promise<void> {
    let killed = false;
    await this.child.stdin.close().catch(() => {}); // the daemon unmounts and exits
    try {
      Deno.kill(this.daemonPid, "SIGTERM"); // the same, should it not watch its input
    } catch {
      // already gone
    }
    let status = await withTimeout(this.child.status, STOP_TIMEOUT_MS);
    if (!status) {
      killed = true;
      try {
        this.child.kill("SIGKILL"); // --kill-child takes the daemon and the mount along
      } catch {
        // already gone
      }
      status = await this.child.status;
    }
    await this.pumps;
    const leftovers = await findLeftovers(this.dir);
    if (!leftovers.some((l) => l.startsWith("mount"))) {
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    }
    if (leftovers.length) {
      throw new Error(`luo-sim left things behind: ${leftovers.join("; ")}`);
    }
    if (!killed && !status.success) {
      throw new Error(
        `luo-sim exited with code ${status.code}${status.signal ? ` (${status.signal})` : ""}:\n` +
          this.stderrText(),
      );
    }
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function processState(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}

/**
 * Live processes whose command line mentions `dir` (the daemon's does), and
 * mounts of it visible in this namespace. Waits a little for a killed daemon
 * to disappear.
 */
async function findLeftovers(dir: string): Promise<string[]> {
  for (let attempt = 0;; attempt++) {
    const found: string[] = [];
    for (const line of (await Deno.readTextFile("/proc/self/mounts")).split("\n")) {
      if (line.includes(dir)) found.push(`mount ${line.split(" ").slice(0, 3).join(" ")}`);
    }
    for await (const entry of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      const pid = Number(entry.name);
      let cmdline: string;
      try {
        cmdline = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).replaceAll("\0", " ");
      } catch {
        continue;
      }
      if (!cmdline.includes(dir)) continue;
      const state = processState(pid);
      if (state && state !== "Z") found.push(`process ${pid} (${cmdline.trim()})`);
    }
    if (!found.length || attempt >= 50) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Starts the simulator binary `options.binary` for `options.tree` and returns once
 * it is mounted. Needs root, `--allow-run`, `--allow-read` and `--allow-write`.
 */
export async function startSimulator(options: SimOptions & { binary: string }): Promise<Sim> {
  const binary = options.binary;
  const dir = await Deno.makeTempDir({ prefix: options.prefix ?? "luo-sim-" });
  let child: Deno.ChildProcess | undefined;
  let stderr = "";
  let pumps: Promise<unknown> = Promise.resolve();
  try {
    let treeFile: string;
    if (typeof options.tree === "string") {
      treeFile = options.tree;
    } else {
      treeFile = `${dir}/tree.txt`;
      await Deno.writeTextFile(treeFile, simTreeText(options.tree));
    }
    const mountpoint = `${dir}/sys`;
    await Deno.mkdir(mountpoint);
    const flags = [
      `--notify=${options.notify === false ? "off" : "on"}`,
      `--buses=${[...BUS_SUBSYSTEMS].join(",")}`,
      ...(options.enabled === false ? ["--disabled"] : []),
      ...(options.subsystems ? [`--subsystems=${options.subsystems.join(",")}`] : []),
      ...(options.verbose ? ["--verbose"] : []),
      "--exit-with-stdin",
    ];
    child = new Deno.Command("unshare", {
      args: [
        "-m",
        "-p",
        "-f",
        "--kill-child",
        "--propagation",
        "private",
        "--mount-proc",
        binary,
        ...flags,
        treeFile,
        mountpoint,
      ],
      // The daemon stops when this pipe closes: with us, if we die without stop().
      stdin: "piped",
      stdout: "piped",
      stderr: options.stderr === "inherit" ? "inherit" : "piped",
    }).spawn();

    let stdout = "";
    let onReady: (line: string | undefined) => void = () => {};
    const ready = new Promise<string | undefined>((resolve) => onReady = resolve);
    const readStdout = (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        stdout += chunk;
        const newline = stdout.indexOf("\n");
        if (newline >= 0) onReady(stdout.slice(0, newline));
      }
      onReady(undefined);
    })();
    const readStderr = options.stderr === "inherit" ? Promise.resolve() : (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        stderr = (stderr + chunk).slice(-STDERR_KEEP);
      }
    })();
    pumps = Promise.all([readStdout, readStderr]);

    const line = await withTimeout(ready, START_TIMEOUT_MS);
    if (!line) throw new Error("luo-sim did not report being mounted");
    const info = JSON.parse(line) as { ready: boolean; loadMs: number };
    const children = (await Deno.readTextFile(`/proc/${child.pid}/task/${child.pid}/children`))
      .trim().split(/\s+/).map(Number);
    const daemonPid = children[0];
    if (!daemonPid) throw new Error("luo-sim's daemon process was not found");
    return new SimProcess(
      `/proc/${child.pid}/root${mountpoint}`,
      mountpoint,
      child.pid,
      daemonPid,
      info.loadMs,
      dir,
      child,
      pumps,
      () => stderr,
    );
  } catch (error) {
    if (child) {
      await child.stdin.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      const status = await child.status;
      await pumps;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      const reason = stderr.trim().replace(/^luo-sim: /, "") || (error as Error).message;
      throw new Error(`luo-sim did not start (exit ${status.code}): ${reason}`, { cause: error });
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

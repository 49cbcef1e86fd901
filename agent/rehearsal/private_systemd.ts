/**
 * A real systemd manager for the rehearsal (`liveupdate-agent demo`) and the tests
 * (tests/systemd/harness.ts wraps this): `systemd --user` (systemd 252 here) in
 * private mount and PID namespaces, in a cgroup of its own, with its own D-Bus bus.
 *
 * How callers reach it: the manager's user bus listens on `$XDG_RUNTIME_DIR/bus`, and
 * the runtime directory is an ordinary directory under /tmp (only /run is private to
 * the namespace), so the bus socket is reachable from the calling process itself. The
 * bus daemon forwards calls to the manager and the manager accepts them (same uid), so
 * the agent's systemd layer talks to this manager through
 * {@link PrivateSystemd.busAddress} like it talks to the system bus in production.
 * Only the manager's *private* socket (what `systemctl` prefers) rejects peers whose
 * PID it cannot see; {@link PrivateSystemd.systemctl} therefore runs systemctl inside
 * the namespace with nsenter. Its services see the host's files except /run (a tmpfs
 * of their own), but not the host's processes: /proc is the namespace's.
 *
 * Teardown ({@link PrivateSystemd.stop}, also `await using`) kills the namespace, which
 * takes every process of the run with it, removes the run's cgroup tree in every
 * hierarchy and the run's directory, and then checks that no process, cgroup or mount
 * of the run is left: a leak throws {@link PrivateSystemdLeakError} (after cleaning it
 * up). If the calling process itself dies, the kernel ends the namespace (parent-death
 * signal); {@link startPrivateSystemd} also sweeps the cgroups of runs whose process
 * is gone.
 *
 * Names: every run is `<prefix>-<caller pid>-<n>-<random>` (cgroup directory and /tmp
 * directory), so parallel runs on a shared machine never collide.
 *
 * This module starts real processes directly (Deno.Command): it is the rehearsal's
 * machine, not a path the agent takes on a real host. Needs root (cgroups,
 * namespaces) and `--allow-all` in practice.
 *
 * @module
 */

import { AgentError } from "../errors.ts";

/** The default prefix of a run's name. */
export const DEFAULT_RUN_PREFIX = "liveupdate-systemd";
const decoder = new TextDecoder();

/** Something of a run survived its teardown. */
export class PrivateSystemdLeakError extends AgentError {
  override name = "PrivateSystemdLeakError";
  constructor(readonly leaks: readonly string[]) {
    super(`The private systemd run left things behind (cleaned up now): ${leaks.join("; ")}`);
  }
}

/** The manager did not come up. */
export class PrivateSystemdStartError extends AgentError {
  override name = "PrivateSystemdStartError";
}

/**
 * The wrapper the manager runs in (`bash -c` with the run's runtime directory, home,
 * log file, log level and cgroups as arguments).
 *
 * CGROUP is "required:DIR" or "optional:DIR", a cgroup directory created for this run.
 * The shell moves itself into each before anything else starts, so the manager builds
 * its app.slice/session.slice below the run's own cgroup instead of at the root of the
 * host's hierarchies. A required one that refuses ends the run.
 *
 * Lifetime: `setpriv --pdeathsig KILL` makes unshare die with the process that started
 * it, and `unshare --kill-child` then kills the namespace's init, which takes every
 * process of the PID namespace (manager, bus, units) with it. The tmpfs on /run exists
 * only in the private mount namespace and goes away with it.
 */
const WRAPPER_SCRIPT = [
  "set -euo pipefail",
  "",
  "runtime_dir=$1 home_dir=$2 log_file=$3 log_level=$4",
  "shift 4",
  'exec 2>>"$log_file.stderr"',
  'for entry in "$@"; do',
  "  kind=${entry%%:*} dir=${entry#*:}",
  '  if ! echo $$ >"$dir/cgroup.procs" 2>/dev/null; then',
  "    if [[ $kind == required ]]; then",
  "      echo \"private_manager: cannot move into cgroup '$dir'\" >&2",
  "      exit 1",
  "    fi",
  "  fi",
  "done",
  "",
  "# Inside: PID 1 of the new namespace is this inner shell. It mounts the private /run,",
  "# starts the manager with a clean environment and its log going to the log file, and",
  "# waits for it.",
  "inner='",
  "set -eu",
  "mount -t tmpfs -o mode=0755,size=16m liveupdate-private-run /run",
  "mkdir -p /run/systemd/system /run/user",
  "# The nodes sandboxing options (ProtectHome=, InaccessiblePaths=, …) mount over paths;",
  "# PID 1 creates them at boot.",
  "mkdir -p -m 0755 /run/systemd/inaccessible",
  "mkdir -m 0000 /run/systemd/inaccessible/dir",
  "install -m 0000 /dev/null /run/systemd/inaccessible/reg",
  "mknod -m 0000 /run/systemd/inaccessible/chr c 0 0",
  "mknod -m 0000 /run/systemd/inaccessible/blk b 0 0",
  "mkfifo -m 0000 /run/systemd/inaccessible/fifo",
  "# A manager that is not PID 1 logs to /dev/console (there is no journal here). Run it on",
  "# a pseudo-terminal that script(1) records into the log file, and bind that terminal over",
  "# /dev/console in this mount namespace: nothing reaches the console of the host.",
  'script --quiet --flush --command "mount --bind \\"\\$(tty)\\" /dev/console && exec env -i \\',
  "  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \\",
  "  HOME=$2 XDG_RUNTIME_DIR=$1 SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=$4 SYSTEMD_COLORS=0 \\",
  '  /usr/lib/systemd/systemd --user" "$3" </dev/null >>"$3.stderr" 2>&1 &',
  "wait $!",
  "'",
  "exec setpriv --pdeathsig KILL -- \\",
  "  unshare --mount --pid --fork --kill-child --propagation private --mount-proc -- \\",
  '  /bin/bash -c "$inner" private-manager "$runtime_dir" "$home_dir" "$log_file" "$log_level"',
].join("\n");

/** What a finished command printed. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link startPrivateSystemd}. */
export interface PrivateSystemdOptions {
  /** Units to install before the manager starts: file name → contents. */
  units?: Readonly<Record<string, string>>;
  /** How long to wait for the manager to be ready (default 60 s; the machine is shared). */
  readyTimeoutMs?: number;
  /**
   * Start the manager in a copy of this process's mount namespace (a pid in the host's
   * pid namespace): its units then see that namespace's mounts, such as the simulated
   * kernel's FUSE mount. Default: the calling process's own.
   */
  mountNamespaceOf?: number;
  /** The manager's log level (default "info"; "debug" explains every transaction). */
  logLevel?: "debug" | "info" | "notice" | "warning" | "err";
  /** Prefix of the run's name (cgroups, /tmp directory); default {@link DEFAULT_RUN_PREFIX}. */
  prefix?: string;
}

/** One cgroup hierarchy mounted on the host. */
interface Hierarchy {
  mountPoint: string;
  /** "name=systemd", "cpu", "memory", … or "" for cgroup2. */
  kind: string;
}

let runCounter = 0;

/** The cgroup hierarchies mounted on this host, from /proc/self/mountinfo. */
export function cgroupHierarchies(): Hierarchy[] {
  const result: Hierarchy[] = [];
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mountPoint = left.split(" ")[4]!;
    const [fsType, , options = ""] = right.split(" ");
    if (fsType === "cgroup2") result.push({ mountPoint, kind: "" });
    else if (fsType === "cgroup") {
      const kind = options.split(",").filter((o) =>
        o !== "rw" && o !== "ro" && !o.includes("relatime")
      )
        .join(",");
      result.push({ mountPoint, kind });
    }
  }
  return result;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Every directory of a cgroup tree, deepest first. */
function treeDeepestFirst(root: string): string[] {
  const dirs: string[] = [];
  const walk = (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const entry of entries) if (entry.isDirectory) walk(`${dir}/${entry.name}`);
    dirs.push(dir);
  };
  walk(root);
  return dirs;
}

/** PIDs in a cgroup tree. */
function treeProcesses(root: string): number[] {
  const pids: number[] = [];
  for (const dir of treeDeepestFirst(root)) {
    try {
      const text = Deno.readTextFileSync(`${dir}/cgroup.procs`).trim();
      if (text) pids.push(...text.split("\n").map(Number));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function commandLine(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
  } catch {
    return "?";
  }
}

/** Whether `pid` runs (a zombie waiting for the host's init to reap it does not). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function run(
  command: string,
  args: readonly string[],
  env?: Record<string, string>,
): Promise<CommandResult> {
  const output = await new Deno.Command(command, {
    args: [...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Removes every cgroup tree of one run in every hierarchy; returns what could not go. */
async function removeRunCgroups(name: string, deadlineMs: number): Promise<string[]> {
  const problems: string[] = [];
  const roots = cgroupHierarchies().map((h) => `${h.mountPoint}/${name}`).filter(exists);
  // Processes first: a cgroup with members cannot be removed.
  let survivors = roots.flatMap(treeProcesses);
  const until = Date.now() + deadlineMs;
  while (survivors.length > 0 && Date.now() < until) {
    await sleep(20);
    survivors = roots.flatMap(treeProcesses);
  }
  if (survivors.length > 0) {
    const unique = [...new Set(survivors)];
    problems.push(
      `processes survived the namespace: ${
        unique.map((p) => `${p} (${commandLine(p)})`).join(", ")
      }`,
    );
    for (const pid of unique) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    const again = Date.now() + 5000;
    while (roots.flatMap(treeProcesses).length > 0 && Date.now() < again) await sleep(20);
  }
  for (const root of roots) {
    for (const dir of treeDeepestFirst(root)) {
      let removed = false;
      for (let attempt = 0; attempt < 50 && !removed; attempt++) {
        try {
          Deno.removeSync(dir);
          removed = true;
        } catch (error) {
          if (error instanceof Deno.errors.NotFound) removed = true;
          else await sleep(20);
        }
      }
      if (!removed) problems.push(`cgroup ${dir} cannot be removed`);
    }
  }
  return problems;
}

/**
 * Removes cgroups of earlier runs whose test process is gone (a crashed or killed
 * `deno test`). Only names of this harness with a dead owner PID are touched.
 */
export async function sweepStaleRuns(prefix = DEFAULT_RUN_PREFIX): Promise<string[]> {
  if (!/^[a-z0-9-]+$/.test(prefix)) throw new RangeError(`Bad run prefix "${prefix}"`);
  const swept: string[] = [];
  const pattern = new RegExp(`^${prefix}-(\\d+)-\\d+-[0-9a-f]+$`);
  const names = new Set<string>();
  for (const hierarchy of cgroupHierarchies()) {
    try {
      for (const entry of Deno.readDirSync(hierarchy.mountPoint)) {
        const match = pattern.exec(entry.name);
        if (match && entry.isDirectory && !alive(Number(match[1]))) names.add(entry.name);
      }
    } catch {
      // unreadable hierarchy
    }
  }
  for (const name of names) {
    await removeRunCgroups(name, 2000);
    await Deno.remove(`/tmp/${name}`, { recursive: true }).catch(() => {});
    swept.push(name);
  }
  return swept;
}

/** A running private manager. Stop it with {@link stop} or `await using`. */
export class PrivateSystemd implements AsyncDisposable {
  /** The run's unique name (cgroup directory and /tmp directory). */
  readonly id: string;
  /** The run's directory (everything of the run lives below it). */
  readonly dir: string;
  /** XDG_RUNTIME_DIR of the manager. */
  readonly runtimeDir: string;
  /** Where {@link installUnits} writes unit files (a directory the manager loads). */
  readonly unitDir: string;
  /** Path of the bus socket. */
  readonly busPath: string;
  /** D-Bus address of the manager's bus, reachable from the test process. */
  readonly busAddress: string;
  /** The manager's log (its console, recorded by script(1)). */
  readonly logFile: string;
  #child: Deno.ChildProcess;
  #status: Promise<Deno.CommandStatus>;
  #nsPid = 0;
  #stopped = false;

  /** @internal Use {@link startPrivateSystemd}. */
  constructor(id: string, dir: string, child: Deno.ChildProcess) {
    this.id = id;
    this.dir = dir;
    this.runtimeDir = `${dir}/run`;
    this.unitDir = `${dir}/run/systemd/user`;
    this.busPath = `${dir}/run/bus`;
    this.busAddress = `unix:path=${this.busPath}`;
    this.logFile = `${dir}/manager.log`;
    this.#child = child;
    this.#status = child.status;
  }

  /** Host PID of the namespace's init (for nsenter). */
  get namespacePid(): number {
    return this.#nsPid;
  }

  /** The manager's PID on the host (a descendant of the namespace's init). */
  managerPid(): number {
    const children = (pid: number) =>
      Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
        .filter(Boolean).map(Number);
    const queue = [this.#nsPid];
    while (queue.length > 0) {
      const pid = queue.shift()!;
      if (pid !== this.#nsPid && commandLine(pid) === "/usr/lib/systemd/systemd --user") return pid;
      try {
        queue.push(...children(pid));
      } catch {
        // ended meanwhile
      }
    }
    throw new Error(`No manager below namespace init ${this.#nsPid}`);
  }

  /** The manager's log so far (its console, then the wrapper's standard error). */
  log(): string {
    const read = (path: string) => {
      try {
        return Deno.readTextFileSync(path);
      } catch {
        return "";
      }
    };
    return (read(this.logFile) + read(`${this.logFile}.stderr`)).replaceAll("\r", "");
  }

  /** @internal */
  async _start(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    const failed = () => {
      throw new PrivateSystemdStartError(
        `The private systemd manager did not come up within ${timeoutMs} ms. Its log:\n${this.log()}`,
      );
    };
    // The namespace's init is unshare's only child.
    const unsharePid = this.#child.pid;
    while (this.#nsPid === 0) {
      if (Date.now() > until) failed();
      try {
        const text = Deno.readTextFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`);
        const pid = Number(text.trim().split(/\s+/)[0]);
        if (pid > 0 && commandLine(unsharePid).startsWith("unshare")) this.#nsPid = pid;
      } catch {
        // not there yet, or the wrapper failed
      }
      if (this.#nsPid === 0) {
        const done = await Promise.race([
          this.#status.then(() => true),
          sleep(10).then(() => false),
        ]);
        if (done) {
          throw new PrivateSystemdStartError(
            `The private systemd wrapper ended early. Log:\n${this.log()}`,
          );
        }
      }
    }
    // Ready: the manager answers on its bus and has finished starting up.
    for (;;) {
      if (Date.now() > until) failed();
      if (exists(this.busPath)) {
        const state = await this.busctl([
          "get-property",
          "org.freedesktop.systemd1",
          "/org/freedesktop/systemd1",
          "org.freedesktop.systemd1.Manager",
          "SystemState",
        ]);
        if (state.code === 0 && /"(running|degraded)"/.test(state.stdout)) break;
      }
      await sleep(20);
    }
    // The manager must live below the run's cgroup, never at a hierarchy's root.
    const lines = Deno.readTextFileSync(`/proc/${this.managerPid()}/cgroup`).trim().split("\n");
    for (const line of lines) {
      const [, controllers, path] = line.split(":");
      if (controllers === "name=systemd" || controllers === "") {
        if (!path?.startsWith(`/${this.id}/`)) {
          throw new PrivateSystemdStartError(
            `The manager runs in cgroup "${path}", not below /${this.id}`,
          );
        }
      }
    }
  }

  /** Runs busctl against the manager's bus (from the test process). */
  busctl(args: readonly string[]): Promise<CommandResult> {
    return run("busctl", [`--address=${this.busAddress}`, ...args]);
  }

  /** Runs `systemctl --user ARGS` inside the namespace (the private socket needs that). */
  systemctl(args: readonly string[]): Promise<CommandResult> {
    return run("nsenter", [
      "-t",
      String(this.#nsPid),
      "-m",
      "-p",
      "--",
      "env",
      `XDG_RUNTIME_DIR=${this.runtimeDir}`,
      `HOME=${this.dir}/home`,
      "systemctl",
      "--user",
      "--no-pager",
      ...args,
    ]);
  }

  /** Writes unit files (name → contents) and reloads the manager. */
  async installUnits(units: Readonly<Record<string, string>>): Promise<void> {
    await writeUnits(this.unitDir, units);
    await this.reload();
  }

  /** Writes a drop-in `<unit>.d/<name>.conf` and reloads the manager. */
  async installDropIn(unit: string, name: string, text: string): Promise<void> {
    await writeUnits(`${this.unitDir}/${unit}.d`, { [`${name}.conf`]: text });
    await this.reload();
  }

  /** Removes unit files and reloads the manager. */
  async removeUnits(names: readonly string[]): Promise<void> {
    for (const name of names) await Deno.remove(`${this.unitDir}/${name}`).catch(() => {});
    await this.reload();
  }

  /** `daemon-reload`: the reply comes after the reload is complete. */
  async reload(): Promise<void> {
    const result = await this.busctl([
      "call",
      "org.freedesktop.systemd1",
      "/org/freedesktop/systemd1",
      "org.freedesktop.systemd1.Manager",
      "Reload",
    ]);
    if (result.code !== 0) throw new Error(`daemon-reload failed: ${result.stderr.trim()}`);
  }

  /** A unit's property as `systemctl show -P` prints it. */
  async property(unit: string, name: string): Promise<string> {
    const result = await this.systemctl(["show", "-P", name, unit]);
    if (result.code !== 0) throw new Error(`systemctl show ${unit}: ${result.stderr.trim()}`);
    return result.stdout.trim();
  }

  /** Kills the D-Bus daemon of the manager's bus (simulates a bus failure). */
  async killBus(): Promise<void> {
    const result = await this.systemctl(["kill", "--signal=SIGKILL", "dbus.service"]);
    if (result.code !== 0) throw new Error(`Killing the bus failed: ${result.stderr.trim()}`);
  }

  /**
   * Tears the run down and asserts nothing is left: no process in the run's cgroups,
   * no cgroup directory of the run in any hierarchy, no mount below the run's
   * directory, no run directory. Throws {@link PrivateSystemdLeakError} otherwise.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const leaks: string[] = [];
    // SIGKILL: unshare blocks SIGTERM while it waits; its death kills the namespace.
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already ended
    }
    await this.#status;
    if (this.#nsPid !== 0) {
      const until = Date.now() + 10_000;
      while (alive(this.#nsPid) && Date.now() < until) await sleep(10);
      if (alive(this.#nsPid)) leaks.push(`namespace init ${this.#nsPid} still alive`);
    }
    leaks.push(...await removeRunCgroups(this.id, 10_000));
    for (const hierarchy of cgroupHierarchies()) {
      if (exists(`${hierarchy.mountPoint}/${this.id}`)) {
        leaks.push(`cgroup ${hierarchy.mountPoint}/${this.id} still exists`);
      }
    }
    const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
      .map((line) => line.split(" ")[4] ?? "")
      .filter((point) => point === this.dir || point.startsWith(`${this.dir}/`));
    for (const point of mounts.reverse()) {
      leaks.push(`mount ${point}`);
      await run("umount", ["-l", point]);
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    if (exists(this.dir)) leaks.push(`directory ${this.dir} cannot be removed`);
    if (leaks.length > 0) throw new PrivateSystemdLeakError(leaks);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

async function writeUnits(dir: string, units: Readonly<Record<string, string>>): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(units)) {
    if (name.includes("/")) throw new Error(`Unit file name "${name}" contains '/'`);
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
}

/**
 * Starts a private `systemd --user` manager and waits until it is ready. Tear it down
 * with `await manager.stop()` in a `finally`, or `await using manager = …`.
 */
export async function startPrivateSystemd(
  options: PrivateSystemdOptions = {},
): Promise<PrivateSystemd> {
  if (Deno.uid() !== 0) throw new PrivateSystemdStartError("A private systemd manager needs root.");
  const prefix = options.prefix ?? DEFAULT_RUN_PREFIX;
  await sweepStaleRuns(prefix);
  const random = crypto.getRandomValues(new Uint8Array(3));
  const suffix = [...random].map((b) => b.toString(16).padStart(2, "0")).join("");
  const id = `${prefix}-${Deno.pid}-${++runCounter}-${suffix}`;
  const dir = `/tmp/${id}`;
  await Deno.mkdir(dir, { mode: 0o700 });
  const cgroupArgs: string[] = [];
  try {
    await Deno.mkdir(`${dir}/run`, { mode: 0o700 });
    await Deno.mkdir(`${dir}/home`, { mode: 0o700 });
    await writeUnits(`${dir}/run/systemd/user`, options.units ?? {});
    for (const hierarchy of cgroupHierarchies()) {
      const cgroup = `${hierarchy.mountPoint}/${id}`;
      try {
        Deno.mkdirSync(cgroup);
      } catch {
        continue;
      }
      if (hierarchy.kind.split(",").includes("cpuset")) {
        // A new cpuset cgroup has no CPUs: copy the parent's, or nothing can join it.
        for (const file of ["cpuset.cpus", "cpuset.mems"]) {
          try {
            const value = Deno.readTextFileSync(`${hierarchy.mountPoint}/${file}`).trim();
            Deno.writeTextFileSync(`${cgroup}/${file}`, value);
          } catch {
            // harmless: the wrapper treats this hierarchy as optional
          }
        }
      }
      const required = hierarchy.kind === "" || hierarchy.kind === "name=systemd";
      cgroupArgs.push(`${required ? "required" : "optional"}:${cgroup}`);
    }
  } catch (error) {
    await removeRunCgroups(id, 1000);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
  const enter = options.mountNamespaceOf === undefined
    ? []
    : ["-t", String(options.mountNamespaceOf), "-m", "--", "/bin/bash"];
  // nsenter (mount namespace only) execs the wrapper in place: the child stays unshare.
  const program = enter.length > 0 ? "nsenter" : "/bin/bash";
  const child = new Deno.Command(program, {
    args: [
      ...enter,
      "-c",
      WRAPPER_SCRIPT,
      "private-manager",
      `${dir}/run`,
      `${dir}/home`,
      `${dir}/manager.log`,
      options.logLevel ?? "info",
      ...cgroupArgs,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const manager = new PrivateSystemd(id, dir, child);
  try {
    await manager._start(options.readyTimeoutMs ?? 60_000);
  } catch (error) {
    try {
      await manager.stop();
    } catch (leak) {
      throw new AggregateError([error, leak], String(error));
    }
    throw error;
  }
  return manager;
}

/**
 * The scenario driver of the Debian + systemd guest (run by
 * luo-mainline-e2e.service after multi-user.target, from the per-run disk at
 * /opt/liveupdate). The variant comes from the command line
 * (`luotest.variant=`):
 *
 * - "flow": the agent's own units (units/*.service, *.target) run the agent from
 *   source under its production permission flags: the session broker
 *   (liveupdate-sessions.service) with client services, preflight refusing the
 *   kexec_load traps (kexec-tools' LOAD_KEXEC=true, a kernel loaded with
 *   `kexec -l`), a client that never reports ready (rolled back: nothing
 *   preserved, services back), then `systemctl start liveupdate-prepare` — the
 *   barrier, `kexec -s -l`, a real KHO kexec through systemd — and in the next
 *   boot liveupdate-finish.service while the clients claim their data. The
 *   attempt records are reported for the host to assert on.
 * - "no-at": the control experiment — the broker without the "@" argv[0],
 *   prepared by hand (`sessions prepare`) and `systemctl kexec`: systemd's
 *   shutdown kills it and every session is lost.
 *
 * Boot 1 ends in a kexec; boot 2 in `systemctl poweroff`.
 *
 * @module
 */

import { permissionFlags } from "../../../agent/build/permissions.ts";
import { openLibc } from "../../../agent/host/libc.ts";
import { realClock } from "../../../agent/host/real_host.ts";
import { LiveupdateDevice } from "../../../agent/kernel/mainline/device.ts";
import { sessionsStatus } from "../../../agent/sessions/client.ts";
import { readRecord } from "../../../agent/sessions/record.ts";
import type { AttemptRecord } from "../../../agent/store/attempt.ts";
import { bootNumber, check, emit, ensure } from "../guest/report.ts";

const OPT = "/opt/liveupdate";
const DENO = `${OPT}/deno`;
const REPO = `${OPT}/repo`;
const SOCKET = "/run/liveupdate/sessions.sock";
const STATE = "/var/lib/liveupdate";
const CLIENTS = ["vm-1", "db-1"];
const STUCK = "stuck-1";
const SIZE = 2 * 1024 * 1024;
const SEED = 7;
const WORKLOAD = "luo-workload.service";
const ENVIRONMENT = `Environment=DENO_DIR=${OPT}/deno-dir NO_COLOR=1 DENO_NO_UPDATE_CHECK=1`;
const decoder = new TextDecoder();

const libc = openLibc();
const boot = bootNumber();
const cmdline = Deno.readTextFileSync("/proc/cmdline");
const variant = cmdline.match(/luotest\.variant=(\S+)/)?.[1] ?? "flow";
const release = Deno.osRelease();

async function exec(command: string, args: string[]): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  return {
    code: output.code,
    out: (decoder.decode(output.stdout) + decoder.decode(output.stderr)).trim(),
  };
}

async function must(command: string, args: string[]): Promise<string> {
  const result = await exec(command, args);
  ensure(result.code === 0, `${command} ${args.join(" ")} exited ${result.code}: ${result.out}`);
  return result.out;
}

/** `deno run` of a repository program with every permission (test programs). */
function denoArgs(script: string, args: string[]): string[] {
  return ["run", "--allow-all", "--cached-only", "--no-check", `${REPO}/${script}`, ...args];
}

/** The agent's command line as its units run it here: from source, production flags. */
function agentCommand(args: string[]): string {
  return [
    DENO,
    "run",
    ...permissionFlags(),
    "--cached-only",
    "--no-check",
    `${REPO}/agent/main.ts`,
    ...args,
  ].join(" ");
}

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, ms = 180_000) {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The attempt records, newest first. */
function attempts(): AttemptRecord[] {
  const records: AttemptRecord[] = [];
  try {
    for (const entry of Deno.readDirSync(`${STATE}/attempts`)) {
      if (!entry.name.endsWith(".json")) continue;
      records.push(JSON.parse(Deno.readTextFileSync(`${STATE}/attempts/${entry.name}`)));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return records.sort((a, b) => b.id.localeCompare(a.id));
}

/** Pids holding a live-update session fd. */
function sessionHolders(): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      for (const fd of Deno.readDirSync(`/proc/${entry.name}/fd`)) {
        const target = Deno.readLinkSync(`/proc/${entry.name}/fd/${fd.name}`);
        if (target.startsWith("anon_inode:[luo_session]")) {
          pids.push(Number(entry.name));
          break;
        }
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

async function isActive(unit: string): Promise<string> {
  return (await exec("systemctl", ["is-active", unit])).out;
}

function writeUnit(name: string, lines: string[]): void {
  Deno.writeTextFileSync(`/etc/systemd/system/${name}`, [...lines, ""].join("\n"));
}

function dropIn(unit: string, lines: string[]): void {
  Deno.mkdirSync(`/etc/systemd/system/${unit}.d`, { recursive: true });
  writeUnit(`${unit}.d/10-from-source.conf`, lines);
}

function clientUnit(name: string, extra: string[]): void {
  writeUnit(name, [
    "[Unit]",
    "Description=Example live-update client %i",
    "Wants=liveupdate-sessions.service",
    "After=liveupdate-sessions.service",
    "[Service]",
    `ExecStart=${DENO} ${
      denoArgs("examples/memfd_client.ts", [
        "preserve",
        "--id",
        "%i",
        "--size",
        String(SIZE),
        "--seed",
        String(SEED),
        ...extra,
      ]).join(" ")
    }`,
    ENVIRONMENT,
  ]);
}

/**
 * Installs the agent's units (as shipped, each with a drop-in that runs the agent
 * from source under its production permission flags), the test's client
 * services and workload, the configuration and the kernel's metadata.
 */
function installUnits(): void {
  const agentUnits: Record<string, string[]> = {
    "liveupdate-prepare.service": ["prepare"],
    "liveupdate-finish.service": ["finish"],
    "liveupdate-cancel.service": ["cancel"],
  };
  for (const entry of Deno.readDirSync(`${REPO}/units`)) {
    if (!/\.(service|target)$/.test(entry.name)) continue;
    if (entry.name === "liveupdate-agent.service") continue;
    Deno.copyFileSync(`${REPO}/units/${entry.name}`, `/etc/systemd/system/${entry.name}`);
  }
  for (const [unit, args] of Object.entries(agentUnits)) {
    // After= only: a Requires= on the mount would let the kexec transaction stop
    // liveupdate-prepare.service while it hands over.
    dropIn(unit, [
      "[Unit]",
      "After=opt-liveupdate.mount",
      "[Service]",
      "ExecStart=",
      `ExecStart=${agentCommand(args)}`,
      ENVIRONMENT,
    ]);
  }
  const serve = agentCommand(["sessions", "serve"]);
  dropIn("liveupdate-sessions.service", [
    "[Unit]",
    "After=opt-liveupdate.mount",
    "[Service]",
    "ExecStart=",
    // The control experiment runs the broker without the "@" argv[0].
    variant === "no-at"
      ? `ExecStart=${serve}`
      : `ExecStart=@${DENO} @liveupdate-sessions ${serve.slice(DENO.length + 1)}`,
    ENVIRONMENT,
  ]);
  clientUnit("luo-example@.service", []);
  clientUnit("luo-example-stuck@.service", ["--never-ready"]);
  writeUnit(WORKLOAD, [
    "[Unit]",
    "Description=A workload the update stops in phase prepare and starts in phase finish",
    "[Service]",
    "ExecStart=/bin/sleep infinity",
  ]);
  Deno.mkdirSync("/etc/liveupdate/config.d", { recursive: true });
  Deno.writeTextFileSync(
    "/etc/liveupdate/config.d/50-test.toml",
    [
      "[target]",
      `kernel = "/boot/vmlinuz-${release}"`,
      // The next boot's number for the scenario (kho=on liveupdate=on come from the
      // running command line, which the target reuses).
      'append = "luotest.boot=2"',
      "[sessions]",
      'ready_timeout = "40s"',
      'claim_timeout = "5min"',
      "[phases.prepare]",
      `stop = ["${WORKLOAD}"]`,
      "[phases.finish]",
      `start = ["${WORKLOAD}"]`,
      "[phases.cancel]",
      `start = ["${WORKLOAD}"]`,
      "",
    ].join("\n"),
  );
  // The target kernel (the same build) and both kernels' handover metadata.
  Deno.copyFileSync(`${OPT}/bzImage`, `/boot/vmlinuz-${release}`);
  Deno.mkdirSync(`/usr/lib/modules/${release}`, { recursive: true });
  Deno.copyFileSync(`${OPT}/liveupdate-abi`, `/usr/lib/modules/${release}/liveupdate-abi`);
}

async function startBroker(): Promise<Record<string, unknown>> {
  installUnits();
  await must("systemctl", ["daemon-reload"]);
  await must("systemctl", ["enable", "liveupdate-sessions.service", "liveupdate-finish.service"]);
  await must("systemctl", ["start", "liveupdate-sessions.service", WORKLOAD]);
  const argv0 = await waitUntil("the broker's pid", async () => {
    const pid = await must("systemctl", ["show", "-P", "MainPID", "liveupdate-sessions"]);
    if (pid === "0") return undefined;
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0")[0];
  });
  ensure(
    variant === "no-at" ? argv0 === DENO : argv0 === "@liveupdate-sessions",
    `argv[0] is ${argv0}`,
  );
  return { argv0, active: await must("systemctl", ["is-active", "liveupdate-sessions"]) };
}

async function subscribers(count: number) {
  return await waitUntil(`${count} subscribers`, async () => {
    const status = await sessionsStatus(libc, SOCKET);
    return status.subscribers.length === count ? status : undefined;
  });
}

/** `systemctl start liveupdate-prepare`: its exit code and the attempt it wrote. */
async function prepare(): Promise<{ code: number; out: string; record: AttemptRecord }> {
  const before = attempts()[0]?.id;
  // SIGTERM ignored across the exec: the kexec transaction stops this driver's unit
  // (SIGTERM to its whole control group) while systemctl still waits for the agent,
  // and the driver's own SIGTERM listener does not carry over to its children.
  const result = await exec("bash", [
    "-c",
    "trap '' TERM; exec systemctl start liveupdate-prepare.service",
  ]);
  const record = attempts()[0];
  ensure(record && record.id !== before, `no new attempt record (${result.out})`);
  return { ...result, record };
}

/** Everything is as before an update: broker idle, nothing loaded, workload up. */
async function untouched(): Promise<Record<string, unknown>> {
  const status = await sessionsStatus(libc, SOCKET);
  ensure(status.phase === "idle", `the broker is ${status.phase}`);
  const loaded = Deno.readTextFileSync("/sys/kernel/kexec_loaded").trim();
  ensure(loaded === "0", `kexec_loaded is ${loaded}`);
  const workload = await isActive(WORKLOAD);
  ensure(workload === "active", `${WORKLOAD} is ${workload}`);
  return { broker: status.phase, subscribers: status.subscribers.length, kexecLoaded: loaded };
}

/** Returns false when a check failed (no kexec happens then). */
async function bootOneFlow(): Promise<boolean> {
  if (!await check(boot, "broker-service-starts", startBroker)) return false;
  if (
    !await check(boot, "client-services-subscribe", async () => {
      await must("systemctl", ["start", ...CLIENTS.map((id) => `luo-example@${id}.service`)]);
      return (await subscribers(CLIENTS.length)).subscribers;
    })
  ) return false;

  if (
    !await check(boot, "preflight-refuses-load-kexec", async () => {
      // kexec-tools' shutdown loader on: it would load with kexec_load.
      Deno.writeTextFileSync("/etc/default/kexec", "LOAD_KEXEC=true\n");
      let run;
      try {
        run = await prepare();
      } finally {
        Deno.writeTextFileSync("/etc/default/kexec", "LOAD_KEXEC=false\n");
      }
      ensure(run.code !== 0, "liveupdate-prepare succeeded with LOAD_KEXEC=true");
      return { record: run.record, after: await untouched() };
    })
  ) return false;

  if (
    !await check(boot, "preflight-refuses-foreign-kernel", async () => {
      // A kernel someone loaded with kexec_load (kexec -l, no -s).
      await must("/usr/sbin/kexec", ["-l", `/boot/vmlinuz-${release}`, "--reuse-cmdline"]);
      let run;
      try {
        run = await prepare();
      } finally {
        await must("/usr/sbin/kexec", ["-u"]);
      }
      ensure(run.code !== 0, "liveupdate-prepare succeeded over a kernel loaded with kexec -l");
      return { record: run.record, after: await untouched() };
    })
  ) return false;

  if (
    !await check(boot, "never-ready-rolled-back", async () => {
      await must("systemctl", ["start", `luo-example-stuck@${STUCK}.service`]);
      await subscribers(CLIENTS.length + 1);
      const run = await prepare();
      ensure(run.code !== 0, "liveupdate-prepare succeeded with a client that is never ready");
      // The broker closed its session fds and told the clients to close theirs.
      const holders = await waitUntil(
        "no process holding a session",
        () => Promise.resolve(sessionHolders().length === 0 ? [] : undefined),
        60_000,
      );
      // Nothing preserved: the kernel has no session of those names any more.
      const device = new LiveupdateDevice({
        libc,
        clock: realClock,
        path: "/dev/liveupdate",
        busyTimeout: 5000,
      });
      const recreated = await device.use((open) =>
        [...CLIENTS, STUCK].map((name) => {
          const session = open.createSession(name);
          session.close();
          return name;
        })
      );
      const after = await untouched();
      await must("systemctl", ["stop", `luo-example-stuck@${STUCK}.service`]);
      await subscribers(CLIENTS.length);
      return { record: run.record, holders, recreated, after };
    })
  ) return false;

  // The kexec transaction stops this service too, while `systemctl start` still waits
  // for the agent to exit: stay until the result is reported (driver.sh ignores SIGTERM
  // for this process and its children), then leave at once.
  Deno.addSignalListener("SIGTERM", () => {});
  if (
    !await check(boot, "update-prepared", async () => {
      const run = await prepare();
      ensure(
        run.code === 0,
        `liveupdate-prepare failed (exit ${run.code}): ${run.out}; the attempt is ` +
          `${run.record.status}: ${JSON.stringify(run.record.outcome ?? null)}`,
      );
      ensure(run.record.status === "kexec-issued", `the attempt is ${run.record.status}`);
      return { record: run.record };
    })
  ) return false;
  emit({ type: "kexec", boot });
  return true;
}

async function bootTwoFlow(): Promise<void> {
  await check(boot, "broker-took-over", async () => {
    const status = await waitUntil("the broker", async () => {
      const status = await sessionsStatus(libc, SOCKET);
      return status.incoming.length === CLIENTS.length ? status : undefined;
    });
    ensure(
      status.incoming.every((i) => i.outcome === "waiting"),
      `incoming ${JSON.stringify(status.incoming)}`,
    );
    return status.incoming;
  });
  for (const id of CLIENTS) await claim(id);
  await check(boot, "update-finished", async () => {
    const record = await waitUntil("the attempt to end", () => {
      const record = attempts()[0];
      return Promise.resolve(
        record && !["kexec-issued", "finishing"].includes(record.status) ? record : undefined,
      );
    }, 10 * 60_000);
    const sessions = await readRecord(STATE);
    return {
      record,
      sessions,
      workload: await isActive(WORKLOAD),
      finishUnit: await exec("systemctl", ["show", "-P", "Result", "liveupdate-finish"]),
    };
  });
}

async function claim(id: string): Promise<void> {
  await check(boot, `claim-${id}`, async () => {
    const out = await must(
      DENO,
      denoArgs("examples/memfd_client.ts", [
        "restore",
        "--id",
        id,
        "--size",
        String(SIZE),
        "--seed",
        String(SEED),
      ]),
    );
    const verified = out.split("\n").map((line) => JSON.parse(line)).find((r) =>
      r.step === "verified"
    );
    ensure(verified?.intact === true, out);
    return verified;
  });
}

/** The control experiment's first boot: prepared by hand, `systemctl kexec`. */
async function bootOneWithoutAt(): Promise<boolean> {
  if (!await check(boot, "broker-service-starts", startBroker)) return false;
  if (
    !await check(boot, "client-services-subscribe", async () => {
      await must("systemctl", ["start", ...CLIENTS.map((id) => `luo-example@${id}.service`)]);
      return (await subscribers(CLIENTS.length)).subscribers;
    })
  ) return false;
  if (
    !await check(boot, "prepare-barrier", async () => {
      const out = await must(DENO, denoArgs("agent/main.ts", ["sessions", "prepare", "--json"]));
      const result = JSON.parse(out);
      ensure(result.ok === true && result.sessions.length === CLIENTS.length, out);
      return result;
    })
  ) return false;
  if (
    !await check(boot, "kexec-file-load", async () => {
      const started = performance.now();
      await must("/usr/sbin/kexec", [
        "-s",
        "-l",
        `/boot/vmlinuz-${release}`,
        "--reuse-cmdline",
        "--append=luotest.boot=2",
      ]);
      return { loadMs: Math.round(performance.now() - started) };
    })
  ) return false;
  emit({ type: "kexec", boot });
  await must("systemctl", ["kexec"]);
  return true;
}

/** The control experiment's second boot: the sessions died with the broker. */
async function bootTwoWithoutAt(): Promise<void> {
  await check(boot, "sessions-lost-without-at", async () => {
    const status = await waitUntil("the broker", async () => {
      const status = await sessionsStatus(libc, SOCKET);
      return status.incoming.length === CLIENTS.length ? status : undefined;
    });
    const claimed = await exec(
      DENO,
      denoArgs("examples/memfd_client.ts", ["restore", "--id", "vm-1"]),
    );
    ensure(claimed.code !== 0, `the claim succeeded without "@": ${claimed.out}`);
    const record = await waitUntil("the record", async () => {
      const record = await readRecord(STATE);
      return record?.sessions.find((s) => s.name === "vm-1")?.outcome === "lost"
        ? record
        : undefined;
    }, 60_000);
    return { incoming: status.incoming, claim: claimed.out, record };
  });
}

let kexecIssued = false;
try {
  emit({ type: "boot", boot, variant });
  if (variant === "no-at") {
    if (boot === 1) kexecIssued = await bootOneWithoutAt();
    else await bootTwoWithoutAt();
  } else if (boot === 1) {
    kexecIssued = await bootOneFlow();
  } else {
    await bootTwoFlow();
  }
  emit({ type: "done", boot });
} catch (error) {
  emit({ type: "driver-failed", boot, error: String(error) });
} finally {
  libc.close();
}
// After the kexec was issued systemd is shutting down; this service ends at once.
if (kexecIssued) Deno.exit(0);
await new Deno.Command("systemctl", { args: ["poweroff"] }).output();

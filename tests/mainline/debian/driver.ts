/**
 * The scenario driver of the Debian + systemd guest (run by
 * luo-mainline-e2e.service after multi-user.target, from the per-run disk at
 * /opt/liveupdate). It exercises what does not need the update flow: the
 * broker as a real systemd service (units/liveupdate-sessions.service) with
 * client services, the kexec_load trap refused by preflight with the real
 * kexec-tools, the barrier, a real `systemctl kexec` (systemd's shutdown must
 * spare the broker: argv[0] "@"), and the claims in the next boot.
 *
 * Boot 1 ends in `systemctl kexec`; boot 2 in `systemctl poweroff`.
 *
 * @module
 */

import { sessionsStatus } from "../../../agent/sessions/client.ts";
import { openLibc } from "../../../agent/host/libc.ts";
import { readRecord } from "../../../agent/sessions/record.ts";
import {
  checkCmdline,
  checkKexecArguments,
  checkKexecToolsLoader,
  checkLoadedKernel,
} from "../../../agent/kernel/mainline/preflight.ts";
import { bootNumber, check, emit, ensure } from "../guest/report.ts";
import { nextCmdline } from "../guest/guest_libc.ts";

const OPT = "/opt/liveupdate";
const DENO = `${OPT}/deno`;
const REPO = `${OPT}/repo`;
const SOCKET = "/run/liveupdate/sessions.sock";
const CLIENTS = ["vm-1", "db-1"];
const SIZE = 2 * 1024 * 1024;
const SEED = 7;
const decoder = new TextDecoder();

const libc = openLibc();
const boot = bootNumber();
/**
 * "no-at": the control experiment — the broker runs without the "@" argv[0],
 * so systemd's shutdown kills it before the kexec and every session is lost.
 */
const variant = Deno.readTextFileSync("/proc/cmdline").match(/luotest\.variant=(\S+)/)?.[1] ??
  "normal";

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

function denoArgs(script: string, args: string[]): string[] {
  return ["run", "--allow-all", "--cached-only", "--no-check", `${REPO}/${script}`, ...args];
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

function installUnits(): void {
  Deno.copyFileSync(
    `${REPO}/units/liveupdate-sessions.service`,
    "/etc/systemd/system/liveupdate-sessions.service",
  );
  // The shipped unit runs the compiled binary; here the agent runs from source.
  Deno.mkdirSync("/etc/systemd/system/liveupdate-sessions.service.d", { recursive: true });
  Deno.writeTextFileSync(
    "/etc/systemd/system/liveupdate-sessions.service.d/10-from-source.conf",
    [
      "[Unit]",
      "After=opt-liveupdate.mount",
      "[Service]",
      "ExecStart=",
      variant === "no-at"
        ? `ExecStart=${DENO} ${denoArgs("agent/main.ts", ["sessions", "serve"]).join(" ")}`
        : `ExecStart=@${DENO} @liveupdate-sessions ${
          denoArgs("agent/main.ts", ["sessions", "serve"]).join(" ")
        }`,
      `Environment=DENO_DIR=${OPT}/deno-dir NO_COLOR=1 DENO_NO_UPDATE_CHECK=1`,
      "",
    ].join("\n"),
  );
  Deno.writeTextFileSync(
    "/etc/systemd/system/luo-example@.service",
    [
      "[Unit]",
      "Description=Example live-update client %i",
      "Wants=liveupdate-sessions.service",
      "After=liveupdate-sessions.service",
      "[Service]",
      `ExecStart=${DENO} ${
        denoArgs("tests/mainline/example_client.ts", [
          "preserve",
          "--id",
          "%i",
          "--size",
          String(SIZE),
          "--seed",
          String(SEED),
        ]).join(" ")
      }`,
      `Environment=DENO_DIR=${OPT}/deno-dir NO_COLOR=1 DENO_NO_UPDATE_CHECK=1`,
      "",
    ].join("\n"),
  );
  Deno.mkdirSync("/etc/liveupdate/config.d", { recursive: true });
  Deno.writeTextFileSync(
    "/etc/liveupdate/config.d/50-test.toml",
    '[sessions]\nclaim_timeout = "10min"\nready_timeout = "3min"\n',
  );
}

/** Returns false when a check failed (no kexec happens then). */
async function bootOne(): Promise<boolean> {
  if (
    !await check(boot, "broker-service-starts", async () => {
      installUnits();
      await must("systemctl", ["daemon-reload"]);
      await must("systemctl", ["enable", "liveupdate-sessions.service"]);
      await must("systemctl", ["start", "liveupdate-sessions.service"]);
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
    })
  ) return false;

  if (
    !await check(boot, "client-services-subscribe", async () => {
      await must("systemctl", ["start", ...CLIENTS.map((id) => `luo-example@${id}.service`)]);
      const status = await waitUntil("two subscribers", async () => {
        const status = await sessionsStatus(libc, SOCKET);
        return status.subscribers.length === CLIENTS.length ? status : undefined;
      });
      return status;
    })
  ) return false;

  if (
    !await check(boot, "kexec-load-trap-refused", async () => {
      // kexec-tools' shutdown loader on: refused.
      Deno.writeTextFileSync("/etc/default/kexec", "LOAD_KEXEC=true\n");
      const loader = await checkKexecToolsLoader(Deno, "/etc");
      Deno.writeTextFileSync("/etc/default/kexec", "LOAD_KEXEC=false\n");
      ensure(!loader.ok, "LOAD_KEXEC=true passed");
      // A kernel loaded with kexec_load (kexec -l, no -s): refused.
      const args = ["-l", `${OPT}/bzImage`, `--append=${nextCmdline(2)}`];
      ensure(!checkKexecArguments(args).ok, "kexec -l passed the argument check");
      await must("/sbin/kexec", args);
      const loaded = await checkLoadedKernel(Deno, "/sys", false);
      await must("/sbin/kexec", ["-u"]);
      ensure(!loaded.ok, "a kernel loaded with kexec -l passed");
      return { loader: loader.message, loaded: loaded.message };
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
      const args = ["-s", "-l", `${OPT}/bzImage`, `--append=${nextCmdline(2)}`];
      const preflight = [
        checkKexecArguments(args),
        checkCmdline(nextCmdline(2), "target"),
        await checkKexecToolsLoader(Deno, "/etc"),
      ];
      const started = performance.now();
      await must("/sbin/kexec", args);
      const loadMs = Math.round(performance.now() - started);
      preflight.push(await checkLoadedKernel(Deno, "/sys", true));
      ensure(preflight.every((finding) => finding.ok), JSON.stringify(preflight));
      return { loadMs, preflight };
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
    const claim = await exec(
      DENO,
      denoArgs("tests/mainline/example_client.ts", ["restore", "--id", "vm-1"]),
    );
    ensure(claim.code !== 0, `the claim succeeded without "@": ${claim.out}`);
    const record = await waitUntil("the record", async () => {
      const record = await readRecord("/var/lib/liveupdate");
      return record?.sessions.find((s) => s.name === "vm-1")?.outcome === "lost"
        ? record
        : undefined;
    }, 60_000);
    return { incoming: status.incoming, claim: claim.out, record };
  });
}

async function bootTwo(): Promise<void> {
  await check(boot, "broker-survived-and-restarted", async () => {
    const status = await waitUntil("the broker", async () => {
      const status = await sessionsStatus(libc, SOCKET);
      return status.incoming.length === CLIENTS.length ? status : undefined;
    });
    const waiting = status.incoming.filter((i) => i.outcome === "waiting").map((i) => i.name);
    ensure(waiting.length === CLIENTS.length, `incoming ${JSON.stringify(status.incoming)}`);
    return status.incoming;
  });

  for (const id of CLIENTS) {
    await check(boot, `claim-${id}`, async () => {
      const out = await must(
        DENO,
        denoArgs("tests/mainline/example_client.ts", [
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

  await check(boot, "record-settled", async () => {
    const record = await waitUntil("the record", async () => {
      const record = await readRecord("/var/lib/liveupdate");
      return record?.phase === "done" ? record : undefined;
    }, 60_000);
    ensure(record.sessions.every((s) => s.outcome === "finished"), JSON.stringify(record));
    return record;
  });
}

let kexecIssued = false;
try {
  emit({ type: "boot", boot });
  if (boot === 1) kexecIssued = await bootOne();
  else if (variant === "no-at") await bootTwoWithoutAt();
  else await bootTwo();
  emit({ type: "done", boot });
} catch (error) {
  emit({ type: "driver-failed", boot, error: String(error) });
} finally {
  libc.close();
}
if (!kexecIssued) await new Deno.Command("systemctl", { args: ["poweroff"] }).output();

/**
 * `liveupdate-agent check --json` on a good and a bad plan (nothing written, the
 * kernel untouched) and `liveupdate-agent watch` as a Type=notify daemon (READY=1,
 * STATUS= on a state change, STOPPING=1 and exit 0 on SIGTERM), each run as the
 * agent's own process against the rig.
 */

import assert from "node:assert/strict";
import { ExitCode } from "../../agent/exit_codes.ts";
import { sockaddrUn } from "../../agent/host/unix_datagram.ts";
import { assertConsistent, assertListedInReadme, hostState, resetRig } from "./_update_faults.ts";
import {
  RUNNING_RELEASE,
  SMALL,
  startUpdateRig,
  TARGET_RELEASE,
  type UpdateRig,
} from "./_update_rig.ts";

const decoder = new TextDecoder();

async function agent(rig: UpdateRig, args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: rig.cliArgs(...args, "--log-format=text"),
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = decoder.decode(output.stderr);
  assert.doesNotMatch(stderr, /^ {4}at /m, stderr);
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr };
}

/** Every file below `dir` with its contents ({} when it does not exist). */
async function tree(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const child = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(child);
      else files[child] = await Deno.readTextFile(child).catch(() => "(unreadable)");
    }
  };
  await walk(dir).catch(() => {});
  return files;
}

/** Runs `check --json` and asserts it wrote nothing and touched nothing. */
async function check(rig: UpdateRig) {
  const before = await hostState(rig);
  const files = { state: await tree(rig.stateDir), run: await tree(`${rig.dir}/run`) };
  const since = (await rig.sim.events()).at(-1)?.seq ?? 0;
  const run = await agent(rig, ["check", "--json"]);
  await assertConsistent(rig, before, { kexecLoaded: before.kexecLoaded });
  assert.deepEqual(await rig.kexecLog(), before.kexecLog, "kexec was not run");
  assert.deepEqual(
    { state: await tree(rig.stateDir), run: await tree(`${rig.dir}/run`) },
    files,
    "nothing was written",
  );
  const writes = (await rig.sim.events({ since })).filter((e) =>
    e.type === "write" || e.type === "state"
  );
  assert.deepEqual(writes, [], "the kernel was not written to");
  return { ...run, json: JSON.parse(run.stdout) };
}

Deno.test("check --json: a good plan and a bad one, nothing written", async (t) => {
  await using rig = await startUpdateRig();

  await t.step("a good plan", async () => {
    await resetRig(rig);
    const { code, json } = await check(rig);
    assert.equal(code, ExitCode.Success);
    assert.equal(json.version, 1);
    assert.equal(json.ok, true);
    assert.deepEqual(json.problems, []);
    assert.deepEqual(json.overrides, []);
    const plan = json.plan;
    assert.equal(plan.backend, "rfc-v1");
    assert.equal(plan.target.kernel, `${rig.dir}/boot/vmlinuz-${TARGET_RELEASE}`);
    assert.equal(plan.target.initrd, `${rig.dir}/boot/initrd.img-${TARGET_RELEASE}`);
    assert.equal(plan.target.release, TARGET_RELEASE);
    assert.equal(plan.target.luoVersion, "1.0");
    assert.equal(plan.target.cmdline, "root=/dev/vda ro liveupdate=on kho=on");
    assert.equal(plan.running.release, RUNNING_RELEASE);
    assert.equal(plan.running.luoVersion, "1.0");
    assert.equal(plan.compat.verdict, "compatible");
    assert.equal(plan.compat.allowed, true);
    assert.equal(plan.compat.override, false);
    assert.equal(plan.devices.supported, true);
    assert.deepEqual(plan.devices.selected.map((d: { path: string }) => d.path), SMALL.selected);
    assert.deepEqual(
      plan.devices.selected.map((d: { unit?: string }) => d.unit),
      ["vm-a.service", "vm-b.service"],
    );
    assert.deepEqual([...plan.devices.ancestors].sort(), [...SMALL.ancestors].sort());
    assert.deepEqual(
      plan.devices.changes,
      SMALL.selected.map((path) => ({ path, from: false, to: true })),
    );
    assert.deepEqual(
      plan.phases.map((p: { phase: string; stop: string[]; start: string[] }) => [
        p.phase,
        p.stop,
        p.start,
      ]),
      [
        ["prepare", ["vmm.service"], ["checkpoint.service"]],
        ["reboot", [], []],
        ["updated", [], ["restore.service", "vmm.service"]],
        ["finish", [], []],
        ["cancel", [], ["vmm.service"]],
      ],
    );
    assert.equal(plan.kexecArgs[0], "-s");
    assert.equal(plan.kexecArgs[1], "-l");
    assert.equal(plan.kexecArgs.at(-1), "--command-line=root=/dev/vda ro liveupdate=on kho=on");
    assert.equal(plan.stopAtPrepared, false);
    assert.equal(plan.issue, "command");
  });

  await t.step("a bad plan: incompatible target, no kho, a missing unit", async () => {
    await resetRig(rig);
    await rig.setVersions("1.0", "2.0");
    await rig.setCmdline("root=/dev/vda ro liveupdate=on\n");
    await rig.setConfig('[phases.prepare]\nstart = ["nope.service"]\n');
    const { code, json, stderr } = await check(rig);
    assert.equal(code, ExitCode.Refused, stderr);
    assert.equal(json.ok, false);
    const checks = json.problems.map((p: { check: string }) => p.check).sort();
    assert.deepEqual(checks, ["cmdline", "compat", "units"]);
    for (const problem of json.problems) {
      assert.equal(typeof problem.message, "string");
      assert.ok(problem.message.length > 20);
    }
    assert.equal(json.plan.compat.verdict, "incompatible");
    assert.equal(json.plan.compat.allowed, false);
    assert.equal(json.plan.target.luoVersion, "2.0");
  });

  await t.step("a bad plan while an update is prepared", async () => {
    await resetRig(rig);
    const prepared = await agent(rig, ["prepare", "--no-kexec"]);
    assert.equal(prepared.code, ExitCode.Success, prepared.stderr);
    const { code, json } = await check(rig);
    assert.equal(code, ExitCode.Refused);
    assert.deepEqual(json.problems.map((p: { check: string }) => p.check).sort(), [
      "kernel",
      "record",
    ]);
    assert.equal((await agent(rig, ["cancel"])).code, ExitCode.Success);
  });
});

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

/** A datagram socket standing in for systemd's notify socket. */
function notifySocket(rig: UpdateRig, path: string) {
  const { symbols } = rig.libc;
  const fd = symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert.ok(fd >= 0, `socket: ${rig.libc.errnoName()}`);
  const { address, length } = sockaddrUn(path);
  assert.equal(symbols.bind(fd, address, length), 0, `bind: ${rig.libc.errnoName()}`);
  const messages: string[] = [];
  const buffer = new Uint8Array(4096);
  const drain = () => {
    for (;;) {
      const n = Number(symbols.read(fd, buffer, BigInt(buffer.length)));
      if (n < 0) return;
      messages.push(decoder.decode(buffer.subarray(0, n)));
    }
  };
  return {
    messages,
    /** Waits until a message matching `pattern` arrived (the `from`th or later). */
    async waitFor(pattern: RegExp, what: string, from = 0): Promise<string> {
      for (let i = 0; i < 3000; i++) {
        drain();
        const found = messages.slice(from).find((m) => pattern.test(m));
        if (found) return found;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`No ${what} on the notify socket; got ${JSON.stringify(messages)}`);
    },
    close() {
      symbols.close(fd);
    },
  };
}

Deno.test("watch: READY=1, a state change in its log and STATUS=, SIGTERM stops it", async () => {
  await using rig = await startUpdateRig();
  await resetRig(rig);
  const socketPath = `${rig.dir}/notify.sock`;
  const socket = notifySocket(rig, socketPath);
  const child = new Deno.Command(Deno.execPath(), {
    args: rig.cliArgs("watch", "--log-format=text"),
    env: { NO_COLOR: "1", NOTIFY_SOCKET: socketPath },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  let stopped = false;
  try {
    const ready = await socket.waitFor(/READY=1/, "READY=1");
    assert.match(ready, /STATUS=Kernel live-update state: normal/);
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "1");
    await socket.waitFor(/STATUS=Kernel live-update state: prepared/, "STATUS= for prepared");
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "0");
    const back = socket.messages.length;
    await socket.waitFor(/STATUS=Kernel live-update state: normal/, "STATUS= for normal", back);
    child.kill("SIGTERM");
    stopped = true;
    const result = await output;
    const stderr = decoder.decode(result.stderr);
    assert.equal(result.code, ExitCode.Success, stderr);
    assert.doesNotMatch(stderr, /^ {4}at /m, stderr);
    assert.match(stderr, /The kernel's live-update state is now "prepared"/);
    assert.match(stderr, /The kernel's live-update state is now "normal"/);
    await socket.waitFor(/STOPPING=1/, "STOPPING=1");
    // The watcher changed nothing.
    assert.equal((await rig.sim.status()).state, "normal");
    assert.equal(await rig.record(), undefined);
  } finally {
    if (!stopped) {
      child.kill("SIGKILL");
      await output;
    }
    socket.close();
  }
});

Deno.test("the README's fault matrix lists every case of this file", async () => {
  await assertListedInReadme([
    "a good plan",
    "a bad plan: incompatible target, no kho, a missing unit",
    "a bad plan while an update is prepared",
    "watch: READY=1, a state change in its log and STATUS=, SIGTERM stops it",
  ]);
});

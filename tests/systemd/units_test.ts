/**
 * The units the agent ships (units/): systemd-analyze verify, their commands,
 * ordering and hardening, and — under a real systemd manager — that the hardened
 * services run the agent with its permission flags, and that the kexec requested
 * from inside liveupdate-prepare.service waits for it instead of cancelling it.
 */
import assert from "node:assert/strict";
import { launcherScript } from "../../agent/build/launcher.ts";
import { dbusNextConnector } from "../../agent/systemd/dbus_next.ts";
import { SystemdManager } from "../../agent/systemd/manager.ts";
import { type PrivateSystemd, startPrivateSystemd } from "./harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const UNITS = `${ROOT}units`;
const SERVICES: Record<string, string> = {
  "liveupdate-prepare.service": "prepare",
  "liveupdate-finish.service": "finish",
  "liveupdate-cancel.service": "cancel",
  "liveupdate-agent.service": "watch",
};
const PHASES = ["prepare", "reboot", "updated", "finish", "cancel"];

/** A unit file as `key → values` (every assignment, in order). */
async function parseUnit(name: string): Promise<Map<string, string[]>> {
  const text = await Deno.readTextFile(`${UNITS}/${name}`);
  const keys = new Map<string, string[]>();
  let section = "";
  for (const line of text.split("\n")) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) section = header[1]!;
    const assignment = /^(\w+)=(.*)$/.exec(line);
    if (assignment) {
      const key = `${section}.${assignment[1]}`;
      keys.set(key, [...(keys.get(key) ?? []), assignment[2]!]);
    }
  }
  return keys;
}

const words = (unit: Map<string, string[]>, key: string) =>
  (unit.get(key) ?? []).flatMap((value) => value.split(/\s+/)).filter(Boolean);

async function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

/**
 * A root for `systemd-analyze verify --root`: the host's system units, the agent's
 * units (optionally edited), and executable stand-ins for the programs they run.
 */
async function verifyRoot(edit?: (name: string, text: string) => string): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-test-systemd-verify-" });
  await Deno.mkdir(`${root}/usr/bin`, { recursive: true });
  await Deno.mkdir(`${root}/usr/lib/systemd`, { recursive: true });
  const copy = await run("cp", ["-a", "/usr/lib/systemd/system", `${root}/usr/lib/systemd/`]);
  assert.equal(copy.code, 0, copy.output);
  // Stand-ins for the programs the units run (verify checks they are executable).
  for (const program of ["liveupdate-agent", "mkdir"]) {
    await Deno.writeTextFile(`${root}/usr/bin/${program}`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  }
  for await (const entry of Deno.readDir(UNITS)) {
    if (!/\.(service|target)$/.test(entry.name)) continue;
    const text = await Deno.readTextFile(`${UNITS}/${entry.name}`);
    await Deno.writeTextFile(
      `${root}/usr/lib/systemd/system/${entry.name}`,
      edit ? edit(entry.name, text) : text,
    );
  }
  return root;
}

async function shippedUnits(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(UNITS)) {
    if (/\.(service|target)$/.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

Deno.test("units: the agent ships five services (one the session broker) and five phase targets", async () => {
  assert.deepEqual(await shippedUnits(), [
    "liveupdate-agent.service",
    "liveupdate-cancel.service",
    ...PHASES.map((p) => `liveupdate-${p}.target`).filter((n) => n < "liveupdate-finish"),
    "liveupdate-finish.service",
    "liveupdate-finish.target",
    "liveupdate-prepare.service",
    "liveupdate-prepare.target",
    "liveupdate-reboot.target",
    "liveupdate-sessions.service",
    "liveupdate-updated.target",
  ]);
});

Deno.test("units: systemd-analyze verify is clean on every unit", async () => {
  const root = await verifyRoot();
  try {
    const units = (await shippedUnits()).map((name) => `${root}/usr/lib/systemd/system/${name}`);
    const result = await run("systemd-analyze", ["verify", `--root=${root}`, ...units]);
    assert.equal(result.output.trim(), "", result.output);
    assert.equal(result.code, 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  // The check can fail: a typo and an ordering cycle are both reported.
  const broken = await verifyRoot((name, text) =>
    name === "liveupdate-cancel.service"
      ? text.replace("[Service]", "[Service]\nProtectSytem=strict")
      : name === "liveupdate-prepare.service"
      ? text.replace("[Service]", "After=liveupdate-cancel.service\n[Service]")
      : text
  );
  try {
    const result = await run("systemd-analyze", [
      "verify",
      `--root=${broken}`,
      `${broken}/usr/lib/systemd/system/liveupdate-cancel.service`,
      `${broken}/usr/lib/systemd/system/liveupdate-prepare.service`,
    ]);
    assert.notEqual(result.code, 0);
    assert.match(result.output, /Unknown key 'ProtectSytem'/);
    assert.match(result.output, /ordering cycle/);
  } finally {
    await Deno.remove(broken, { recursive: true });
  }
});

Deno.test("units: each service runs /usr/bin/liveupdate-agent with its command", async () => {
  for (const [name, command] of Object.entries(SERVICES)) {
    const unit = await parseUnit(name);
    assert.deepEqual(unit.get("Service.ExecStart"), [`/usr/bin/liveupdate-agent ${command}`], name);
  }
  assert.deepEqual((await parseUnit("liveupdate-agent.service")).get("Service.Type"), ["notify"]);
  for (const name of ["prepare", "finish", "cancel"]) {
    const unit = await parseUnit(`liveupdate-${name}.service`);
    assert.deepEqual(unit.get("Service.Type"), ["oneshot"], name);
    assert.equal(unit.get("Service.RemainAfterExit"), undefined, `${name} can run again`);
  }
});

Deno.test("units: ordering against kexec.target, shutdown.target, dbus and udev", async () => {
  const prepare = await parseUnit("liveupdate-prepare.service");
  // The kexec transaction the agent starts must not stop (cancel) the prepare job:
  // no conflict with shutdown.target, and no Requires= on what the shutdown stops
  // (also none implied: StateDirectory= and PrivateTmp= require their mounts).
  assert.deepEqual(prepare.get("Unit.DefaultDependencies"), ["no"]);
  for (
    const implied of ["Service.StateDirectory", "Service.PrivateTmp", "Unit.RequiresMountsFor"]
  ) {
    assert.equal(prepare.get(implied), undefined, implied);
  }
  assert.ok(!words(prepare, "Unit.Conflicts").includes("shutdown.target"));
  // Not even on sysinit.target: it conflicts with shutdown.target (default dependencies).
  assert.deepEqual(words(prepare, "Unit.Requires"), []);
  assert.ok(words(prepare, "Unit.Wants").includes("sysinit.target"));
  assert.ok(words(prepare, "Unit.Before").includes("kexec.target"));
  assert.ok(words(prepare, "Unit.Before").includes("shutdown.target"));
  const finish = await parseUnit("liveupdate-finish.service");
  // The boot does not wait for finish (it may wait minutes for reclaim).
  assert.deepEqual(finish.get("Unit.DefaultDependencies"), ["no"]);
  assert.deepEqual(finish.get("Install.WantedBy"), ["multi-user.target"]);
  assert.ok(!words(finish, "Unit.Before").includes("multi-user.target"));
  assert.ok(words(finish, "Unit.Conflicts").includes("shutdown.target"));
  for (const name of Object.keys(SERVICES)) {
    const unit = await parseUnit(name);
    const after = words(unit, "Unit.After");
    for (const needed of ["dbus.service", "systemd-udevd.service"]) {
      assert.ok(after.includes(needed), `${name} After=${needed}`);
    }
    assert.ok(words(unit, "Unit.Wants").includes("dbus.socket"), `${name} Wants=dbus.socket`);
  }
  for (const name of ["prepare", "finish"]) {
    const after = words(await parseUnit(`liveupdate-${name}.service`), "Unit.After");
    assert.ok(after.includes("systemd-udev-trigger.service"), name);
    assert.ok(after.includes("systemd-udev-settle.service"), name);
  }
  // Phase targets: each side of an update leaves the others.
  const conflicts = async (phase: string) =>
    words(await parseUnit(`liveupdate-${phase}.target`), "Unit.Conflicts");
  assert.deepEqual(
    (await conflicts("cancel")).sort(),
    ["finish", "prepare", "reboot", "updated"].map((p) => `liveupdate-${p}.target`),
  );
  for (const phase of ["prepare", "reboot"]) {
    assert.ok(!(await conflicts(phase)).includes("liveupdate-prepare.target"), phase);
    assert.ok((await conflicts(phase)).includes("liveupdate-updated.target"), phase);
  }
  for (const phase of ["prepare", "reboot"]) {
    assert.ok(
      words(await parseUnit(`liveupdate-${phase}.target`), "Unit.Before").includes("kexec.target"),
    );
  }
});

Deno.test("units: hardened; CAP_SYS_BOOT only where the kexec kernel is loaded or unloaded", async () => {
  for (const name of Object.keys(SERVICES)) {
    const unit = await parseUnit(name);
    const caps = words(unit, "Service.CapabilityBoundingSet");
    const kexec = name === "liveupdate-prepare.service" || name === "liveupdate-cancel.service";
    assert.deepEqual(caps, kexec ? ["CAP_SYS_BOOT"] : [], name);
    assert.deepEqual(unit.get("Service.NoNewPrivileges"), ["yes"], name);
    assert.deepEqual(unit.get("Service.ProtectSystem"), ["strict"], name);
    // V8 needs writable+executable memory for its JIT.
    assert.equal(unit.get("Service.MemoryDenyWriteExecute"), undefined, name);
    const result = await run("systemd-analyze", ["security", "--offline=true", `${UNITS}/${name}`]);
    const score = Number(/Overall exposure level for \S+: (\d+\.\d+)/.exec(result.output)?.[1]);
    // The exposure is driven to <= 1.5 later; it must not get worse meanwhile.
    assert.ok(score <= 2.5, `${name}: exposure ${score}`);
  }
});

/** Installs the shipped units (services with a test drop-in) into a private manager. */
async function installShipped(
  systemd: PrivateSystemd,
  execStart: (name: string) => string,
): Promise<string> {
  const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
  const bin = `${systemd.dir}/bin`;
  await Deno.mkdir(bin);
  // The deno binary may live below /root (npx), which ProtectHome= hides: put it beside
  // the launcher (a hard link when possible).
  await Deno.link(Deno.execPath(), `${bin}/deno`).catch(() =>
    Deno.copyFile(Deno.execPath(), `${bin}/deno`)
  );
  // The VM tier's launcher, at paths the sandbox can see (/tmp and /root are hidden).
  await Deno.writeTextFile(
    `${bin}/liveupdate-agent`,
    launcherScript({
      deno: "/opt/liveupdate-test/bin/deno",
      main: "/opt/liveupdate-test/src/agent/main.ts",
      denoDir: "/opt/liveupdate-test/deno",
    }),
    { mode: 0o755 },
  );
  const units: Record<string, string> = {
    // The user manager has no sysinit.target; like the system's, it is not stopped
    // by the shutdown.
    "sysinit.target": "[Unit]\nDescription=stand-in for sysinit.target\nDefaultDependencies=no\n",
    // Services of the system manager live in system.slice, which is never stopped; the
    // user manager's app.slice is stopped by shutdown.target, taking its services along.
    // (No '-' in the name: that would make it a child of another slice.)
    "lutest.slice": "[Unit]\nDescription=stand-in for system.slice\nDefaultDependencies=no\n",
  };
  for (const name of await shippedUnits()) {
    units[name] = await Deno.readTextFile(`${UNITS}/${name}`);
  }
  await Deno.writeTextFile(`${systemd.dir}/out.log`, "");
  await systemd.installUnits(units);
  for (const name of Object.keys(SERVICES)) {
    await systemd.installDropIn(
      name,
      "test",
      [
        "[Service]",
        // Not on the test host: no /var/lib/liveupdate is created or needed.
        "ExecStartPre=",
        "ReadWritePaths=",
        "Type=oneshot",
        "Slice=lutest.slice",
        "ExecStart=",
        `ExecStart=${execStart(name)}`,
        `BindReadOnlyPaths=${denoDir}:/opt/liveupdate-test/deno ${bin}:/opt/liveupdate-test/bin`,
        `BindReadOnlyPaths=${ROOT}:/opt/liveupdate-test/src`,
        `StandardOutput=append:${systemd.dir}/out.log`,
        `StandardError=append:${systemd.dir}/out.log`,
        "",
      ].join("\n"),
    );
  }
  return `${systemd.dir}/out.log`;
}

Deno.test("units: under a real manager the hardened services run the agent with its permission flags", async () => {
  await using systemd = await startPrivateSystemd();
  const out = await installShipped(
    systemd,
    () => `/opt/liveupdate-test/bin/liveupdate-agent --log-format=text config --json`,
  );
  for (const name of Object.keys(SERVICES)) {
    await Deno.writeTextFile(out, "");
    const start = await systemd.systemctl(["start", name]);
    assert.equal(start.code, 0, `${name}: ${start.stderr}\n${await Deno.readTextFile(out)}`);
    const config = JSON.parse(await Deno.readTextFile(out));
    assert.equal(config.config.systemd.bus_address, "unix:path=/run/dbus/system_bus_socket");
    assert.equal(await systemd.property(name, "Result"), "success");
  }
});

Deno.test("units: a kexec requested from inside liveupdate-prepare waits for it, not cancels it", async () => {
  await using systemd = await startPrivateSystemd();
  // A stand-in kexec.target shaped like the real one: it pulls in shutdown.target.
  // The stand-in agent takes a second, then prints when it ends (µs, wall clock).
  const out = await installShipped(systemd, () => "/bin/sh -c 'sleep 1; date +%%s%%6N'");
  await systemd.installUnits({
    "kexec.target":
      "[Unit]\nDefaultDependencies=no\nRequires=shutdown.target\nAfter=shutdown.target\n",
  });
  // Nothing ties the unit to mounts the shutdown stops (only the runtime directory).
  const mounts = await systemd.property("liveupdate-prepare.service", "RequiresMountsFor");
  for (const path of mounts.split(/\s+/).filter(Boolean)) {
    assert.ok(path.startsWith(`${systemd.runtimeDir}/`), `RequiresMountsFor=${path}`);
  }
  const prepare = systemd.systemctl(["start", "liveupdate-prepare.service"]);
  for (let i = 0; i < 500; i++) {
    if (await systemd.property("liveupdate-prepare.service", "ActiveState") === "activating") break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  // What the agent does as its last step: start kexec.target (replace-irreversibly).
  await using manager = await SystemdManager.connect(dbusNextConnector, systemd.busAddress)
    .catch(async () => {
      // The bus daemon may already be stopping with shutdown.target; retry once.
      return await SystemdManager.connect(dbusNextConnector, systemd.busAddress);
    });
  await manager.startKexec();
  const result = await prepare;
  assert.equal(result.code, 0, `the prepare start succeeded: ${result.stderr}`);
  for (let i = 0; i < 500; i++) {
    if (await systemd.property("kexec.target", "ActiveState") === "active") break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const exited = Number((await Deno.readTextFile(out)).trim());
  // (The bus is gone by now: the shutdown transaction stopped it. systemctl talks to
  // the manager's private socket.)
  const enter = await systemd.systemctl([
    "show",
    "--timestamp=us+utc",
    "-P",
    "ActiveEnterTimestamp",
    "kexec.target",
  ]);
  const kexec =
    Date.parse(enter.stdout.trim().replace(/^\w+ (\S+) (\S+)\.(\d{3})(\d{3}) UTC$/, "$1T$2.$3Z")) *
      1000 +
    Number(/\.\d{3}(\d{3}) UTC/.exec(enter.stdout)?.[1]);
  assert.ok(exited > 0 && kexec >= exited, `kexec.target (${kexec}) after prepare (${exited})`);
});

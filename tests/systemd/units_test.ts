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
import { fakeBzImage } from "../kho/bzimage.ts";
import { startSim } from "../sim/harness.ts";
import { writeUdevDb } from "../sim/tree.ts";
import { RUNNING_RELEASE, SMALL, smallTree, TARGET_RELEASE } from "../integration/_update_rig.ts";

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

Deno.test("units: the agent ships five services (one the session broker) and the five phase targets", async () => {
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
  // Every service that reads the udev database (prepare selects, finish reclaims, the
  // watcher's and cancel's recovery give devices back) starts after udev's coldplug.
  for (const name of ["prepare", "finish", "cancel", "agent"]) {
    const after = words(await parseUnit(`liveupdate-${name}.service`), "Unit.After");
    assert.ok(after.includes("systemd-udev-trigger.service"), name);
    assert.ok(after.includes("systemd-udev-settle.service"), name);
  }
  // At boot the watcher's recovery waits for finish instead of racing it for the lock.
  assert.ok(
    words(await parseUnit("liveupdate-agent.service"), "Unit.After").includes(
      "liveupdate-finish.service",
    ),
  );
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

/** The highest exposure `systemd-analyze security --offline=true` may give a shipped service. */
const MAX_EXPOSURE = 1.5;
/** The services that load or unload the kexec kernel (kexec_file_load, kexec -u). */
/** The services of the update itself (a session broker, say, has its own needs). */
const UPDATE_SERVICES = [
  "liveupdate-prepare.service",
  "liveupdate-finish.service",
  "liveupdate-cancel.service",
  "liveupdate-agent.service",
];
/** The services that check compatibility: they read <modules_dir>/<release>/liveupdate-abi. */
const READS_MODULES_DIR = [
  "liveupdate-prepare.service",
  "liveupdate-finish.service",
  "liveupdate-agent.service",
];
const KEXEC_SERVICES = [
  "liveupdate-prepare.service", // loads the target; unloads it on rollback
  "liveupdate-cancel.service", // unloads it
  "liveupdate-agent.service", // recover at start completes a rollback: unloads it
];

/** The exposure systemd-analyze gives `file` (NaN when it prints none). */
async function exposure(file: string, extra: string[] = []): Promise<number> {
  const result = await run("systemd-analyze", ["security", "--offline=true", ...extra, file]);
  return Number(/Overall exposure level for \S+: (\d+\.\d+)/.exec(result.output)?.[1]);
}

async function shippedServices(): Promise<string[]> {
  return (await shippedUnits()).filter((name) => name.endsWith(".service"));
}

Deno.test("units: every shipped service scores at most 1.5 in systemd-analyze security", async () => {
  const services = await shippedServices();
  // The agent's four services, and the session broker (mainline kernels only).
  assert.deepEqual(services, [...Object.keys(SERVICES), "liveupdate-sessions.service"].sort());
  for (const name of services) {
    const score = await exposure(`${UNITS}/${name}`);
    assert.ok(score <= MAX_EXPOSURE, `${name}: exposure ${score} > ${MAX_EXPOSURE}`);
  }
  // The check can fail: the same unit without its network and kernel-tunable sandbox.
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-test-exposure-" });
  try {
    const text = await Deno.readTextFile(`${UNITS}/liveupdate-prepare.service`);
    const weaker = text.replace(/^(PrivateNetwork|IPAddressDeny|ProtectKernelTunables)=.*\n/gm, "")
      .replace(/^RestrictAddressFamilies=.*$/m, "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6");
    await Deno.writeTextFile(`${dir}/liveupdate-prepare.service`, weaker);
    const score = await exposure(`${dir}/liveupdate-prepare.service`);
    assert.ok(score > MAX_EXPOSURE, `the weakened unit scores ${score}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("units: CAP_SYS_BOOT and @reboot only where the kexec kernel is loaded or unloaded", async () => {
  for (const name of Object.keys(SERVICES)) {
    const unit = await parseUnit(name);
    const kexec = KEXEC_SERVICES.includes(name);
    assert.deepEqual(
      words(unit, "Service.CapabilityBoundingSet"),
      kexec ? ["CAP_SYS_BOOT"] : [],
      name,
    );
    // An allow-list, minus @privileged and @resources, plus @reboot (kexec-tools'
    // system calls, which @privileged holds) only where CAP_SYS_BOOT is kept.
    assert.deepEqual(unit.get("Service.SystemCallFilter"), [
      "@system-service",
      "~@privileged @resources",
      ...(kexec ? ["@reboot"] : []),
    ], name);
    assert.deepEqual(unit.get("Service.SystemCallArchitectures"), ["native"], name);
  }
});

Deno.test("units: hardened: read-only system and /sys but the live-update files, local sockets only", async () => {
  // Every shipped service: no new privileges, a read-only system, local sockets only.
  for (const name of await shippedServices()) {
    const unit = await parseUnit(name);
    for (const key of ["NoNewPrivileges", "PrivateNetwork", "ProtectKernelTunables"]) {
      assert.deepEqual(unit.get(`Service.${key}`), ["yes"], `${name} ${key}`);
    }
    assert.deepEqual(unit.get("Service.ProtectSystem"), ["strict"], name);
    assert.deepEqual(unit.get("Service.RestrictAddressFamilies"), ["AF_UNIX"], name);
    assert.deepEqual(unit.get("Service.IPAddressDeny"), ["any"], name);
  }
  for (const name of UPDATE_SERVICES) {
    const unit = await parseUnit(name);
    const yes = [
      "NoNewPrivileges",
      "ProtectHome",
      "PrivateMounts",
      "PrivateDevices",
      "ProtectKernelTunables",
      ...(READS_MODULES_DIR.includes(name) ? [] : ["ProtectKernelModules"]),
      "ProtectKernelLogs",
      "ProtectControlGroups",
      "ProtectClock",
      "ProtectHostname",
      "RestrictNamespaces",
      "RestrictRealtime",
      "RestrictSUIDSGID",
      "LockPersonality",
      "PrivateNetwork",
    ];
    for (const key of yes) assert.deepEqual(unit.get(`Service.${key}`), ["yes"], `${name} ${key}`);
    // ProtectKernelModules= hides /usr/lib/modules, where each kernel's liveupdate-abi
    // metadata lives: not where compatibility is checked. Modules still cannot be
    // loaded there (no CAP_SYS_MODULE; @module is outside @system-service).
    if (READS_MODULES_DIR.includes(name)) {
      assert.equal(unit.get("Service.ProtectKernelModules"), undefined, name);
      assert.ok(!words(unit, "Service.CapabilityBoundingSet").includes("CAP_SYS_MODULE"), name);
    }
    assert.deepEqual(unit.get("Service.ProtectSystem"), ["strict"], name);
    assert.deepEqual(unit.get("Service.ProtectProc"), ["invisible"], name);
    assert.deepEqual(unit.get("Service.RestrictAddressFamilies"), ["AF_UNIX"], name);
    assert.deepEqual(unit.get("Service.IPAddressDeny"), ["any"], name);
    assert.deepEqual(unit.get("Service.UMask"), ["0077"], name);
    // /dev: the pseudo devices and /dev/liveupdate (mainline), nothing else.
    assert.deepEqual(unit.get("Service.DeviceAllow"), ["/dev/liveupdate rw"], name);
    assert.deepEqual(unit.get("Service.BindPaths"), ["-/dev/liveupdate"], name);
    // Writable: the live-update files, the state and runtime directories, the metrics
    // directory; nothing else (ProtectSystem=strict).
    const writable = words(unit, "Service.ReadWritePaths").map((path) => path.replace(/^-/, ""));
    const state = name === "liveupdate-prepare.service"
      ? ["/var/lib/liveupdate"] // no StateDirectory= (see "ordering" above)
      : [];
    assert.deepEqual(
      writable.sort(),
      [
        "/sys/kernel/liveupdate",
        "/sys/devices",
        "/var/lib/prometheus/node-exporter",
        ...state,
      ].sort(),
      name,
    );
    if (state.length === 0) assert.deepEqual(unit.get("Service.StateDirectory"), ["liveupdate"]);
    assert.deepEqual(unit.get("Service.RuntimeDirectory"), ["liveupdate"], name);
    // V8 needs writable+executable memory for its JIT; procfs facts (cmdline, uptime,
    // osrelease, boot_id) are outside ProcSubset=pid.
    assert.equal(unit.get("Service.MemoryDenyWriteExecute"), undefined, name);
    assert.equal(unit.get("Service.ProcSubset"), undefined, name);
  }
});

Deno.test("units: the fleet network drop-in opens TCP to the listed addresses only", async () => {
  const dropIn = await Deno.readTextFile(`${ROOT}config/liveupdate-fleet-network.conf`);
  const root = await verifyRoot();
  try {
    for (const name of Object.keys(SERVICES)) {
      const dir = `${root}/etc/systemd/system/${name}.d`;
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(`${dir}/50-fleet-network.conf`, dropIn);
    }
    const units = Object.keys(SERVICES).map((name) => `${root}/usr/lib/systemd/system/${name}`);
    const result = await run("systemd-analyze", ["verify", `--root=${root}`, ...units]);
    assert.equal(result.output.trim(), "", result.output);
    assert.equal(result.code, 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  await using systemd = await startPrivateSystemd();
  await installShipped(systemd, () => "/bin/true");
  for (const name of Object.keys(SERVICES)) {
    await systemd.installDropIn(name, "50-fleet-network", dropIn);
  }
  for (const name of Object.keys(SERVICES)) {
    assert.equal(await systemd.property(name, "PrivateNetwork"), "no", name);
    assert.deepEqual(
      (await systemd.property(name, "RestrictAddressFamilies")).split(" ").sort(),
      ["AF_INET", "AF_INET6", "AF_UNIX"],
      name,
    );
    const sorted = async (key: string) => (await systemd.property(name, key)).split(" ").sort();
    assert.deepEqual(await sorted("IPAddressDeny"), ["0.0.0.0/0", "::/0"], name);
    assert.deepEqual(
      await sorted("IPAddressAllow"),
      ["192.0.2.11/32", "192.0.2.12/32", "192.0.2.13/32"],
      name,
    );
  }
});

/** Installs the shipped units (services with a test drop-in) into a private manager. */
async function installShipped(
  systemd: PrivateSystemd,
  execStart: (name: string) => string,
  extra: (name: string) => string[] = () => [],
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
    // The user manager has no sysinit.target; like the system's (checked in the VM
    // tier), it is stopped by the shutdown (and the kexec) transaction.
    "sysinit.target": "[Unit]\nDescription=stand-in for sysinit.target\nDefaultDependencies=no\n" +
      "Conflicts=shutdown.target\nBefore=shutdown.target\n",
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
    // The shipped writable paths, each optional: the test host has no
    // /var/lib/liveupdate (ExecStartPre= creates it in production).
    const writable = words(await parseUnit(name), "Service.ReadWritePaths")
      .map((path) => `-${path.replace(/^-/, "")}`);
    await systemd.installDropIn(
      name,
      "test",
      [
        "[Service]",
        "ExecStartPre=",
        "ReadWritePaths=",
        `ReadWritePaths=${writable.join(" ")}`,
        "Type=oneshot",
        "Slice=lutest.slice",
        "ExecStart=",
        `ExecStart=${execStart(name)}`,
        `BindReadOnlyPaths=${denoDir}:/opt/liveupdate-test/deno ${bin}:/opt/liveupdate-test/bin`,
        `BindReadOnlyPaths=${ROOT}:/opt/liveupdate-test/src`,
        `StandardOutput=append:${systemd.dir}/out.log`,
        `StandardError=append:${systemd.dir}/out.log`,
        ...extra(name),
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

/**
 * The agent at work inside the shipped sandboxes: the private manager runs in the
 * simulated kernel's mount namespace, each service keeps its shipped hardening
 * (system-call filter, capability bounding set, private network, devices, tmp,
 * read-only system), and a test drop-in only points it at the rehearsal host: the
 * simulator bound at /run/lutest/sys (read-only but for its live-update files, as
 * ProtectKernelTunables= and ReadWritePaths= leave /sys), the configuration in
 * /run/liveupdate/config.d, records in /run/liveupdate, the bus at the system
 * bus's path, a kexec stand-in over /usr/sbin, the target image over /boot — the
 * paths the launcher's Deno permissions name. prepare (up to state prepared),
 * the kexec, finish, prepare and cancel, and the watcher's recover at start of a
 * prepare that was killed, each as `systemctl start` of its unit.
 */
Deno.test("units: the agent drives a whole update inside the shipped sandboxes", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await using systemd = await startPrivateSystemd({ mountNamespaceOf: sim.pid });
  const stage = `${systemd.dir}/stage`;
  const write = async (path: string, data: string | Uint8Array, mode = 0o644) => {
    await Deno.mkdir(`${stage}/${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
    if (typeof data === "string") await Deno.writeTextFile(`${stage}/${path}`, data, { mode });
    else await Deno.writeFile(`${stage}/${path}`, data, { mode });
    await Deno.chmod(`${stage}/${path}`, mode);
  };
  await writeUdevDb(smallTree(), `${stage}/udev`);
  await write("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda ro liveupdate=on kho=on\n");
  await write("proc/sys/kernel/osrelease", `${RUNNING_RELEASE}\n`);
  await write("proc/uptime", "1234.56 2000.00\n");
  await write("proc/sys/kernel/random/boot_id", "0f3b6c2e-9a41-4d7b-8c55-2f1e0a9d7b31\n");
  await write("proc/sys/kernel/hostname", "sandbox\n");
  await write(
    `boot/vmlinuz-${TARGET_RELEASE}`,
    fakeBzImage({ version: `${TARGET_RELEASE} (x@y) #1` }),
  );
  // kexec-tools' stand-in: loads and unloads succeed (what the kernel did is the simulator's).
  await write("sbin/kexec", "#!/bin/sh\nexit 0\n", 0o755);
  await Deno.mkdir(`${stage}/state`, { recursive: true });
  await Deno.mkdir(`${stage}/run`, { recursive: true });
  await write(
    "config/50-sandbox.toml",
    [
      "[paths]",
      'sysfs = "/run/lutest/sys"',
      'proc = "/run/lutest/proc"',
      'udev_db = "/run/lutest/udev"',
      'debugfs = "/run/lutest/debug"',
      'state_dir = "/run/liveupdate/state"',
      'runtime_dir = "/run/liveupdate/run"',
      "[target]",
      `kernel = "/boot/vmlinuz-${TARGET_RELEASE}"`,
      "[compat]",
      'running_version = "1.0"',
      'target_version = "1.0"',
      "[devices]",
      'reclaim_timeout = "2s"',
      "",
    ].join("\n"),
  );
  const launcher = "/opt/liveupdate-test/bin/liveupdate-agent --log-format=text";
  const commands: Record<string, string> = {
    "liveupdate-prepare.service": "prepare --no-kexec",
    "liveupdate-finish.service": "finish",
    "liveupdate-cancel.service": "cancel",
    "liveupdate-agent.service": "watch",
  };
  const out = await installShipped(
    systemd,
    (name) => `${launcher} ${commands[name] ?? "status"}`,
    (name) => [
      // The rehearsal host at the paths the agent's Deno permissions name.
      `BindPaths=${sim.mountpoint}:/run/lutest/sys ${stage}/state:/run/liveupdate/state`,
      `BindPaths=${stage}/run:/run/liveupdate/run ${systemd.runtimeDir}/bus:/run/dbus/system_bus_socket`,
      `BindReadOnlyPaths=${stage}/proc:/run/lutest/proc ${stage}/udev:/run/lutest/udev`,
      `BindReadOnlyPaths=${stage}/config:/run/liveupdate/config.d ${stage}/boot:/boot`,
      `BindReadOnlyPaths=${stage}/sbin:/usr/sbin`,
      // The simulated sysfs as ProtectKernelTunables= and the shipped ReadWritePaths=
      // leave /sys: read-only but for the live-update files.
      "ReadOnlyPaths=/run/lutest/sys",
      "ReadWritePaths=/run/lutest/sys/kernel/liveupdate /run/lutest/sys/devices",
      // The watcher without sd_notify (the user manager's notify socket is under /tmp).
      ...(name === "liveupdate-agent.service" ? ["Type=exec", "NotifyAccess=none"] : []),
    ],
  );
  const record = async () => {
    const names = [...Deno.readDirSync(`${stage}/state/attempts`)].map((e) => e.name)
      .filter((name) => name.endsWith(".json")).sort();
    return JSON.parse(await Deno.readTextFile(`${stage}/state/attempts/${names.at(-1)}`));
  };
  const start = async (name: string) => {
    await Deno.writeTextFile(out, "");
    const result = await systemd.systemctl(["start", name]);
    assert.equal(result.code, 0, `${name}: ${result.stderr}\n${await Deno.readTextFile(out)}`);
    assert.equal(await systemd.property(name, "Result"), "success", await Deno.readTextFile(out));
  };

  // prepare: devices requested, kernel loaded, both phases, the kernel prepared.
  await start("liveupdate-prepare.service");
  assert.equal((await sim.status()).state, "prepared");
  assert.equal((await record()).status, "prepared");
  for (const path of SMALL.selected) {
    assert.equal(await Deno.readTextFile(sim.device(path, "liveupdate/requested")), "1\n");
  }
  // The kexec (systemd's part, here the simulator's), then finish in the new boot.
  await sim.kexec();
  await Deno.writeTextFile(`${stage}/proc/sys/kernel/osrelease`, `${TARGET_RELEASE}\n`);
  for (const path of [...SMALL.selected, ...SMALL.ancestors]) await sim.setReclaimed(path);
  await start("liveupdate-finish.service");
  assert.equal((await sim.status()).state, "normal");
  assert.equal((await record()).status, "succeeded");

  // prepare, then cancel.
  await start("liveupdate-prepare.service");
  assert.equal((await sim.status()).state, "prepared");
  await start("liveupdate-cancel.service");
  assert.equal((await sim.status()).state, "normal");
  assert.equal((await record()).status, "cancelled");

  // A prepare killed after preparing the kernel; the watcher's recover at start rolls it back.
  await systemd.installDropIn(
    "liveupdate-prepare.service",
    "zz-crash",
    [
      "[Service]",
      "Environment=LIVEUPDATE_AGENT_CRASH_AT=prepare-kernel:done",
      "",
    ].join("\n"),
  );
  const killed = await systemd.systemctl(["start", "liveupdate-prepare.service"]);
  assert.notEqual(killed.code, 0, "the killed prepare fails its start");
  assert.equal((await sim.status()).state, "prepared");
  assert.equal((await record()).status, "preparing");
  await Deno.writeTextFile(out, "");
  assert.equal((await systemd.systemctl(["start", "liveupdate-agent.service"])).code, 0);
  for (let i = 0; i < 600 && ["preparing", "rolling-back"].includes((await record()).status); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal((await record()).status, "rolled-back", await Deno.readTextFile(out));
  assert.equal((await sim.status()).state, "normal");
  for (const path of SMALL.selected) {
    assert.equal(await Deno.readTextFile(sim.device(path, "liveupdate/requested")), "0\n");
  }
  assert.equal(
    await systemd.property("liveupdate-agent.service", "ActiveState"),
    "active",
    `${await systemd.property("liveupdate-agent.service", "SubState")} ${await systemd.property(
      "liveupdate-agent.service",
      "Type",
    )}\n${await Deno.readTextFile(out)}`,
  );
  await systemd.systemctl(["stop", "liveupdate-agent.service"]);
});

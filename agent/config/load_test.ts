import assert from "node:assert/strict";
import { ConfigError } from "./config_error.ts";
import { DROP_IN_DIRS, findDropIns, loadConfig } from "./load.ts";

type Tree = Record<string, string>;

async function withRoot(tree: Tree, fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-config-" });
  try {
    for (const [file, content] of Object.entries(tree)) {
      const full = `${root}${file}`;
      await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
      await Deno.writeTextFile(full, content);
    }
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const USR = DROP_IN_DIRS[0];
const ETC = DROP_IN_DIRS[1];
const RUN = DROP_IN_DIRS[2];

Deno.test("defaults hold when no drop-in exists", async () => {
  await withRoot({}, async (root) => {
    const loaded = await loadConfig(Deno, { root });
    assert.deepEqual(loaded.sources, []);
    assert.equal(loaded.config.paths.sysfs, "/sys");
    assert.equal(loaded.config.paths.state_dir, "/var/lib/liveupdate");
    assert.equal(loaded.config.systemd.bus_address, "unix:path=/run/dbus/system_bus_socket");
    assert.equal(loaded.config.kernel.watch_interval, 1000);
    assert.deepEqual(loaded.config.phases.prepare.stop, []);
    assert.equal(loaded.origins.size, 0);
  });
});

Deno.test("the shipped defaults file loads as the defaults, and drop-ins still apply over it", async () => {
  const shipped = await Deno.readTextFile(
    new URL("../../config/00-defaults.toml", import.meta.url),
  );
  await withRoot({ [`${USR}/00-defaults.toml`]: shipped }, async (root) => {
    const loaded = await loadConfig(Deno, { root });
    const bare = await loadConfig(Deno, { root: `${root}/nonexistent` });
    assert.deepEqual(loaded.config, bare.config, "the file says what the defaults are");
  });
  // A window setting from another file, with no days anywhere, is still refused.
  await withRoot({
    [`${USR}/00-defaults.toml`]: shipped,
    [`${ETC}/50-window.toml`]: '[fleet.window]\nstart = "22:00"\n',
  }, async (root) => {
    const error = await loadConfig(Deno, { root }).catch((e) => e);
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /"fleet.window.start" is set but "fleet.window.days" lists no day/);
    assert.match(error.message, /50-window\.toml/);
  });
});

Deno.test("directories merge /usr/lib, then /etc, then /run; files lexically within", async () => {
  await withRoot({
    [`${USR}/10-base.toml`]: '[paths]\nsysfs = "/usr-sys"\nstate_dir = "/usr-state"\n',
    [`${USR}/90-late.toml`]: '[paths]\nudev_db = "/usr-udev"\n',
    [`${ETC}/20-site.toml`]: '[paths]\nsysfs = "/etc-sys"\n',
    [`${ETC}/05-early.toml`]: '[paths]\nudev_db = "/etc-udev-early"\n',
    [`${ETC}/50-later.toml`]: '[paths]\nudev_db = "/etc-udev-later"\n',
    [`${RUN}/00-runtime.toml`]: '[paths]\nstate_dir = "/run-state"\n',
  }, async (root) => {
    const loaded = await loadConfig(Deno, { root });
    assert.deepEqual(loaded.sources, [
      `${root}${USR}/10-base.toml`,
      `${root}${USR}/90-late.toml`,
      `${root}${ETC}/05-early.toml`,
      `${root}${ETC}/20-site.toml`,
      `${root}${ETC}/50-later.toml`,
      `${root}${RUN}/00-runtime.toml`,
    ]);
    assert.equal(loaded.config.paths.sysfs, "/etc-sys");
    assert.equal(loaded.config.paths.udev_db, "/etc-udev-later");
    assert.equal(loaded.config.paths.state_dir, "/run-state");
    assert.equal(loaded.origins.get("paths.sysfs"), `${root}${ETC}/20-site.toml`);
    assert.equal(loaded.origins.get("paths.state_dir"), `${root}${RUN}/00-runtime.toml`);
    assert.equal(loaded.origins.get("paths.debugfs"), undefined);
  });
});

Deno.test("a later file with the same name replaces the earlier one entirely", async () => {
  await withRoot({
    [`${USR}/50-vendor.toml`]: '[paths]\nsysfs = "/vendor"\nudev_db = "/vendor-udev"\n',
    [`${ETC}/50-vendor.toml`]: '[paths]\nsysfs = "/mine"\n',
  }, async (root) => {
    const loaded = await loadConfig(Deno, { root });
    assert.deepEqual(loaded.sources, [`${root}${ETC}/50-vendor.toml`]);
    assert.equal(loaded.config.paths.sysfs, "/mine");
    assert.equal(loaded.config.paths.udev_db, "/run/udev", "the vendor file is not merged");
  });
});

Deno.test("an empty file or a symlink to /dev/null masks a same-named file", async () => {
  await withRoot({
    [`${USR}/50-vendor.toml`]: '[paths]\nsysfs = "/vendor"\n',
    [`${USR}/60-other.toml`]: '[paths]\nudev_db = "/other"\n',
    [`${ETC}/50-vendor.toml`]: "",
  }, async (root) => {
    await Deno.symlink("/dev/null", `${root}${RUN}/60-other.toml`).catch(async () => {
      await Deno.mkdir(`${root}${RUN}`, { recursive: true });
      await Deno.symlink("/dev/null", `${root}${RUN}/60-other.toml`);
    });
    const loaded = await loadConfig(Deno, { root });
    assert.deepEqual(loaded.sources, []);
    assert.equal(loaded.config.paths.sysfs, "/sys");
    assert.equal(loaded.config.paths.udev_db, "/run/udev");
  });
});

Deno.test("files without .toml and hidden files are ignored", async () => {
  await withRoot({
    [`${ETC}/50-site.toml.bak`]: "garbage = [",
    [`${ETC}/.50-site.toml`]: "garbage = [",
    [`${ETC}/README`]: "not toml",
  }, async (root) => {
    assert.deepEqual(await findDropIns(Deno, root), []);
  });
});

Deno.test("later tables merge key by key into earlier ones", async () => {
  await withRoot({
    [`${USR}/10.toml`]: '[phases.prepare]\nstop = ["vmm.service"]\ntimeout = "30s"\n',
    [`${ETC}/10.toml.d-ignored`]: "",
    [`${ETC}/20.toml`]: '[phases.prepare]\nstart = ["checkpoint.service"]\n',
  }, async (root) => {
    const { config } = await loadConfig(Deno, { root });
    assert.deepEqual(config.phases.prepare.stop, ["vmm.service"]);
    assert.deepEqual(config.phases.prepare.start, ["checkpoint.service"]);
    assert.equal(config.phases.prepare.timeout, 30_000);
  });
});

/** Each malformed config, the key it must name, and a phrase its message must hold. */
const MALFORMED: { name: string; toml: string; key?: string; says: RegExp }[] = [
  { name: "TOML syntax", toml: "[paths\nsysfs = 1", says: /not valid TOML at line 1, column \d+/ },
  { name: "unterminated string", toml: 'sysfs = "abc', says: /not valid TOML at line 1/ },
  {
    name: "unknown key with suggestion",
    toml: '[kernel]\nwatch_intervall = "2s"',
    key: "kernel.watch_intervall",
    says: /unknown key "kernel.watch_intervall"; did you mean "kernel.watch_interval"\?/,
  },
  {
    name: "unknown section with suggestion",
    toml: '[kernal]\nbackend = "auto"',
    key: "kernal",
    says: /unknown section "kernal"; did you mean "kernel"\?/,
  },
  {
    name: "key in the wrong section",
    toml: '[paths]\nbus_address = "unix:path=/x"',
    key: "paths.bus_address",
    says: /did you mean "systemd.bus_address"\?/,
  },
  {
    name: "unknown key without suggestion",
    toml: "[paths]\nfrobnicate = 1",
    key: "paths.frobnicate",
    says: /unknown key "paths.frobnicate" Remove it/,
  },
  {
    name: "relative path",
    toml: '[paths]\nsysfs = "sys"',
    key: "paths.sysfs",
    says: /is "sys" \(it is not an absolute path\), but must be an absolute path/,
  },
  {
    name: "path with ..",
    toml: '[paths]\nstate_dir = "/var/../etc"',
    key: "paths.state_dir",
    says: /'\.\.' component/,
  },
  {
    name: "path of the wrong type",
    toml: "[paths]\nsysfs = 5",
    key: "paths.sysfs",
    says: /is 5, but must be an absolute path/,
  },
  {
    name: "bad duration",
    toml: '[phases.prepare]\ntimeout = "10 parsecs"',
    key: "phases.prepare.timeout",
    says: /is "10 parsecs", but must be a duration .* use the default "2min"/,
  },
  {
    name: "duration out of range",
    toml: '[kernel]\nwatch_interval = "2h"',
    key: "kernel.watch_interval",
    says: /\(it is out of range\)/,
  },
  {
    name: "negative duration",
    toml: "[kernel]\nwatch_interval = -3",
    key: "kernel.watch_interval",
    says: /is -3, but must be a duration/,
  },
  {
    name: "enum value",
    toml: '[log]\nlevel = "verbose"',
    key: "log.level",
    says: /is "verbose", but must be one of "debug", "info", "notice", "warning", "error"/,
  },
  {
    name: "boolean as string",
    toml: '[compat]\nallow_unknown = "yes"',
    key: "compat.allow_unknown",
    says: /is "yes", but must be true or false/,
  },
  {
    name: "unit name without suffix",
    toml: '[phases.prepare]\nstop = ["vmm"]',
    key: "phases.prepare.stop",
    says: /"vmm" is not a unit name with a type suffix/,
  },
  {
    name: "unit list as a string",
    toml: '[phases.prepare]\nstop = "vmm.service"',
    key: "phases.prepare.stop",
    says: /must be a list of unit names/,
  },
  {
    name: "unit listed twice",
    toml: '[phases.cancel]\nstart = ["a.service", "a.service"]',
    key: "phases.cancel.start",
    says: /lists a unit twice/,
  },
  {
    name: "section given as a value",
    toml: 'paths = "/sys"',
    key: "paths",
    says: /"paths" is "\/sys", but must be a table \(\[paths\]\)/,
  },
  {
    name: "phase section given as a value",
    toml: "[phases]\nprepare = 1",
    key: "phases.prepare",
    says: /must be a table \(\[phases.prepare\]\)/,
  },
  {
    name: "integer out of range",
    toml: "[store]\nhistory = 0",
    key: "store.history",
    says: /is 0 \(it is out of range\), but must be an integer from 1 to 10000/,
  },
  {
    name: "float for an integer",
    toml: "[store]\nhistory = 2.5",
    key: "store.history",
    says: /is 2.5, but must be an integer/,
  },
  {
    name: "bad bus address",
    toml: '[systemd]\nbus_address = "tcp:host=10.0.0.1"',
    key: "systemd.bus_address",
    says: /must be a unix socket D-Bus address/,
  },
  {
    name: "abstract bus address",
    toml: '[systemd]\nbus_address = "unix:abstract=/tmp/dbus-x"',
    key: "systemd.bus_address",
    says: /is "unix:abstract=\/tmp\/dbus-x", but must be a unix socket D-Bus address such as/,
  },
  {
    name: "bad version override",
    toml: '[compat]\ntarget_version = "one"',
    key: "compat.target_version",
    says: /must be a version such as "1.0"/,
  },
  {
    name: "bad udev tag",
    toml: '[devices]\ntag = "live update"',
    key: "devices.tag",
    says: /must be a udev tag name/,
  },
  {
    name: "bad property filter name",
    toml: '[devices.match]\n"driver" = "vfio-pci"',
    key: "devices.match",
    says: /the name "driver" is not allowed/,
  },
  {
    name: "unit both stopped and started",
    toml: '[phases.prepare]\nstop = ["a.service"]\nstart = ["a.service"]',
    key: "phases.prepare.start",
    says: /unit "a.service" is both stopped and started in phase "prepare"/,
  },
  {
    name: "kexec issued by a command without one",
    toml: '[kexec]\nissue = "command"',
    key: "kexec.issue_command",
    says: /kexec.issue is "command" but kexec.issue_command does not start with an absolute/,
  },
  {
    name: "kexec issue command as a string",
    toml: '[kexec]\nissue_command = "/bin/kexec-now"',
    key: "kexec.issue_command",
    says: /must be a list of arguments/,
  },
  {
    name: "initrd without kernel",
    toml: '[target]\ninitrd = "/boot/initrd.img"',
    key: "target.initrd",
    says: /"target.initrd" is set but "target.kernel" is not/,
  },
  {
    name: "date where a string belongs",
    toml: "[target]\ncmdline = 1979-05-27",
    key: "target.cmdline",
    says: /is a date \(1979-05-27\), but must be a string/,
  },
  {
    name: "fleet backend",
    toml: '[fleet]\nbackend = "consul"',
    key: "fleet.backend",
    says: /must be one of "none", "etcd", "fleetlock"/,
  },
  {
    name: "fleet group with a slash",
    toml: '[fleet]\ngroup = "rack/a"',
    key: "fleet.group",
    says: /is "rack\/a", but must be a group name of letters, digits/,
  },
  {
    name: "fleet slots zero",
    toml: "[fleet]\nslots = 0",
    key: "fleet.slots",
    says: /is 0 \(it is out of range\), but must be an integer from 1 to 100000/,
  },
  {
    name: "fleet group slots with a bad group name",
    toml: '[fleet.group_slots]\n"rack a" = 2',
    key: "fleet.group_slots",
    says: /the name "rack a" is not allowed.*a table of group names to slot counts/,
  },
  {
    name: "fleet group slots not an integer",
    toml: '[fleet.group_slots]\nrack-a = "two"',
    key: "fleet.group_slots",
    says: /the value of "rack-a" is not an integer/,
  },
  {
    name: "fleet group slots out of range",
    toml: "[fleet.group_slots]\nrack-a = 0",
    key: "fleet.group_slots",
    says: /the value of "rack-a" is out of range/,
  },
  {
    name: "fleet host id with a slash",
    toml: '[fleet]\nhost_id = "a/b"',
    key: "fleet.host_id",
    says: /must be an id of letters, digits/,
  },
  {
    name: "window day name",
    toml: '[fleet.window]\ndays = ["sat", "caturday"]',
    key: "fleet.window.days",
    says: /"caturday" does not match\), but must be a list of day names/,
  },
  {
    name: "window start time",
    toml: '[fleet.window]\ndays = ["sat"]\nstart = "25:00"',
    key: "fleet.window.start",
    says: /is "25:00", but must be a time such as "22:30"/,
  },
  {
    name: "window time zone",
    toml: '[fleet.window]\ndays = ["sat"]\ntime_zone = "Mars/Olympus_Mons"',
    key: "fleet.window.time_zone",
    says: /\(it is not a known time zone\), but must be an IANA time zone/,
  },
  {
    name: "window length zero",
    toml: '[fleet.window]\ndays = ["sat"]\nlength = "0s"',
    key: "fleet.window.length",
    says: /\(it is out of range\), but must be a duration from "1min" to "7d"/,
  },
  {
    name: "window settings without days",
    toml: '[fleet.window]\nstart = "22:00"',
    key: "fleet.window.start",
    says: /"fleet.window.start" is set but "fleet.window.days" lists no day/,
  },
  {
    name: "etcd endpoint without scheme",
    toml: '[fleet.etcd]\nendpoints = ["etcd-1:2379"]',
    key: "fleet.etcd.endpoints",
    says: /"etcd-1:2379" does not match\), but must be a list of URLs/,
  },
  {
    name: "etcd prefix without trailing slash",
    toml: '[fleet.etcd]\nprefix = "/liveupdate"',
    key: "fleet.etcd.prefix",
    says: /must be a key prefix ending in "\/"/,
  },
  {
    name: "etcd lease shorter than etcd allows",
    toml: '[fleet.etcd]\nlease_ttl = "1s"',
    key: "fleet.etcd.lease_ttl",
    says: /\(it is out of range\), but must be a duration from "2s"/,
  },
  {
    name: "etcd halt scope",
    toml: '[fleet.etcd]\nhalt = "nothing"',
    key: "fleet.etcd.halt",
    says: /must be one of "fleet", "group", "slot"/,
  },
  {
    name: "etcd backend without endpoints",
    toml: '[fleet]\nbackend = "etcd"',
    key: "fleet.etcd.endpoints",
    says: /"fleet.backend" is "etcd" but "fleet.etcd.endpoints" lists no endpoint/,
  },
  {
    name: "etcd client certificate without key",
    toml: '[fleet.etcd]\ncert_file = "/etc/liveupdate/fleet/client.pem"',
    key: "fleet.etcd.key_file",
    says: /"fleet.etcd.cert_file" is set but "fleet.etcd.key_file" is not/,
  },
  {
    name: "etcd password file without user",
    toml: '[fleet.etcd]\npassword_file = "/etc/liveupdate/fleet/password"',
    key: "fleet.etcd.username",
    says: /"fleet.etcd.password_file" is set but "fleet.etcd.username" is not/,
  },
  {
    name: "etcd CA file relative",
    toml: '[fleet.etcd]\nca_file = "ca.pem"',
    key: "fleet.etcd.ca_file",
    says: /is "ca.pem" \(it is not an absolute path\)/,
  },
  {
    name: "fleetlock backend without URL",
    toml: '[fleet]\nbackend = "fleetlock"',
    key: "fleet.fleetlock.url",
    says: /"fleet.backend" is "fleetlock" but "fleet.fleetlock.url" is not set/,
  },
  {
    name: "fleetlock URL not http",
    toml: '[fleet.fleetlock]\nurl = "ftp://airlock.example"',
    key: "fleet.fleetlock.url",
    says: /\(it is not an http\(s\) URL\)/,
  },
  {
    name: "fleetlock URL with credentials",
    toml: '[fleet.fleetlock]\nurl = "https://user:secret@airlock.example"',
    key: "fleet.fleetlock.url",
    says: /\(it carries credentials/,
  },
  {
    name: "fleetlock URL not a URL",
    toml: '[fleet.fleetlock]\nurl = "airlock.example"',
    key: "fleet.fleetlock.url",
    says: /\(it is not a URL\)/,
  },
  {
    name: "health unit without suffix",
    toml: '[fleet.health]\nunits = ["vmm"]',
    key: "fleet.health.units",
    says: /"vmm" is not a unit name with a type suffix/,
  },
];

for (const bad of MALFORMED) {
  Deno.test(`malformed config: ${bad.name}`, async () => {
    await withRoot({ [`${ETC}/50-bad.toml`]: bad.toml }, async (root) => {
      const error = await loadConfig(Deno, { root }).then(
        () => assert.fail("the config was accepted"),
        (error: unknown) => error,
      );
      assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
      assert.equal(error.name, "ConfigError");
      assert.equal(error.exitCode, 3);
      assert.equal(error.problems.length, 1, error.message);
      const [problem] = error.problems;
      const file = `${root}${ETC}/50-bad.toml`;
      assert.equal(problem!.file, file);
      assert.ok(problem!.message.startsWith(`Config file "${file}"`), problem!.message);
      if (bad.key) assert.equal(problem!.key, bad.key);
      assert.match(problem!.message, bad.says);
      assert.doesNotMatch(problem!.message, /\n/, "one line");
    });
  });
}

Deno.test("problems in several files are all reported, in merge order", async () => {
  await withRoot({
    [`${USR}/10.toml`]: "[log]\nlevel = 1",
    [`${ETC}/10.toml.x`]: "",
    [`${ETC}/20.toml`]: '[paths]\nsysfs = "x"\n[nope]\n',
  }, async (root) => {
    const error = await loadConfig(Deno, { root }).catch((e) => e);
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.problems.map((p) => p.key), ["log.level", "paths.sysfs", "nope"]);
    assert.match(error.message, /\(and 2 more problems\)$/);
  });
});

Deno.test("an unreadable config file is a clear error", async () => {
  await withRoot({ [`${ETC}/50.toml`]: "" }, async (root) => {
    const file = `${root}${ETC}/50.toml`;
    await Deno.remove(file);
    await Deno.mkdir(file);
    await Deno.writeTextFile(`${file}/inner`, "x");
    const error = await loadConfig(Deno, { root }).catch((e) => e);
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /^Cannot read config file ".*\/50\.toml": it is a directory\./);
  });
});

Deno.test("a file where a config directory belongs is a clear error", async () => {
  await withRoot({ "/etc/liveupdate/config.d": "oops" }, async (root) => {
    const error = await loadConfig(Deno, { root }).catch((e) => e);
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /Config directory ".*config\.d" is not a directory/);
  });
});

Deno.test("fleet settings are read and merged", async () => {
  await withRoot({
    [`${USR}/40-fleet.toml`]: '[fleet]\nbackend = "etcd"\nslots = 2\n' +
      '[fleet.group_slots]\nrack-a = 3\n[fleet.etcd]\nendpoints = ["http://127.0.0.1:2379"]\n',
    [`${ETC}/50-host.toml`]:
      '[fleet]\ngroup = "rack-a"\n[fleet.window]\ndays = ["Sat", "sunday"]\n' +
      'start = "22:30"\nlength = "4h"\ntime_zone = "Europe/Berlin"\n',
  }, async (root) => {
    const { config } = await loadConfig(Deno, { root });
    assert.equal(config.fleet.backend, "etcd");
    assert.equal(config.fleet.group, "rack-a");
    assert.deepEqual(config.fleet.group_slots, { "rack-a": 3 });
    assert.deepEqual(config.fleet.window.days, ["Sat", "sunday"]);
    assert.equal(config.fleet.window.length, 4 * 3_600_000);
    assert.equal(config.fleet.etcd.lease_ttl, 30_000);
  });
});

Deno.test("a drop-in must be a regular UTF-8 file of at most 1 MiB inside the config directories", async () => {
  await withRoot({ [`${USR}/10.toml`]: '[log]\nlevel = "debug"\n' }, async (root) => {
    const etc = `${root}${ETC}`;
    await Deno.mkdir(etc, { recursive: true });
    const made = await new Deno.Command("mkfifo", { args: [`${etc}/20-fifo.toml`] }).output();
    assert.equal(made.code, 0);
    await Deno.writeTextFile(`${root}/shadow`, "root:$6$x:19000:0:99999:7:::\n");
    await Deno.symlink(`${root}/shadow`, `${etc}/30-outside.toml`);
    await Deno.symlink(`${root}${USR}/10.toml`, `${etc}/40-inside.toml`);
    await Deno.writeTextFile(`${etc}/50-huge.toml`, `# ${"x".repeat(1024 * 1024)}\n`);
    await Deno.writeFile(`${etc}/60-latin1.toml`, new Uint8Array([0x23, 0xe9, 0x0a]));
    await Deno.writeTextFile(`${etc}/70-deep.toml`, `a = ${"[".repeat(100_000)}`);
    const error = await loadConfig(Deno, { root }).catch((e) => e);
    assert.ok(error instanceof ConfigError);
    const messages = error.problems.map((p) => p.message);
    assert.equal(messages.length, 5, messages.join("\n"));
    assert.match(messages[0]!, /20-fifo\.toml" is not a regular file/);
    assert.match(
      messages[1]!,
      /30-outside\.toml" is a symlink to ".*\/shadow", outside the config/,
    );
    assert.doesNotMatch(messages.join("\n"), /\$6\$/, "the target's contents are never shown");
    assert.match(messages[2]!, /50-huge\.toml" has \d+ bytes, more than the 1048576/);
    assert.match(messages[3]!, /60-latin1\.toml" is not UTF-8 text/);
    assert.match(messages[4]!, /70-deep\.toml" is not valid TOML/);
  });
});

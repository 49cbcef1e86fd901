/**
 * Malformed configuration: TOML syntax, types, ranges, unknown keys, huge files,
 * binary garbage, NUL bytes, deep nesting, and drop-ins that are not plain files.
 * Each is a drop-in `60-bad.toml` beside the host's own; the agent must refuse
 * the configuration with exit code 3, naming the file (and the key).
 *
 * @module
 */

import {
  type CaseTable,
  EXIT,
  garbage,
  type HostileCase,
  plant,
  plantDir,
  plantFifo,
  plantLink,
} from "./_case.ts";
import type { HostileHost } from "./_host.ts";

const bad = (host: HostileHost) => `${host.configRoot}/etc/liveupdate/config.d/60-bad.toml`;

/** A drop-in holding `toml`, refused with `says` (and the file named). */
function dropIn(
  name: string,
  toml: string | Uint8Array,
  says: RegExp,
  argv = ["config", "--json"],
): HostileCase {
  return {
    name,
    setup: (host) => plant(bad(host), toml),
    argv,
    code: EXIT.config,
    stderr: new RegExp(`60-bad\\.toml[\\s\\S]*${says.source}`),
  };
}

const syntax = /is not valid TOML at line \d+, column \d+/;

const SYNTAX: [string, string][] = [
  ["an unclosed table header", '[paths\nsysfs = "/sys"\n'],
  ["a key without a value", "[log]\nlevel =\n"],
  ["a value without a key", '[log]\n= "info"\n'],
  ["an unterminated string", '[log]\nlevel = "info\n'],
  ["an unterminated literal string", "[log]\nlevel = 'info\n"],
  ["two values on one line", '[log]\nlevel = "info" "debug"\n'],
  ["a key defined twice", '[log]\nlevel = "info"\nlevel = "debug"\n'],
  ["a table defined twice", "[log]\n[log]\n"],
  ["a dotted key over a value", "[log]\nlevel = 1\nlevel.x = 2\n"],
  ["an invalid escape", '[log]\nlevel = "\\q"\n'],
  ["a bare key with a space", "[log]\nlev el = 1\n"],
  ["an impossible date", "[log]\nlevel = 1979-13-45\n"],
  ["a leading zero", "[store]\nhistory = 007\n"],
  ["a double underscore in a number", "[store]\nhistory = 1__0\n"],
  ["an integer beyond 64 bits", "[store]\nhistory = 99999999999999999999999\n"],
  ["an array of tables over a table", '[log]\nlevel = "info"\n[[log]]\n'],
  ["an unclosed array", '[phases.prepare]\nstop = ["a.service"\n'],
  ["an unclosed inline table", '[devices]\nmatch = { DRIVER = "x"\n'],
  ["an empty table header", "[]\n"],
  ["a control character in a string", '[log]\nlevel = "in\u0001fo"\n'],
];

const VALUES: [string, string, RegExp][] = [
  ["a number for a choice", "[log]\nlevel = 1\n", /key "log\.level" is 1, but must be one of/],
  ["a boolean for a choice", "[log]\nformat = true\n", /key "log\.format" is true/],
  [
    "a number for a path",
    "[paths]\nsysfs = 5\n",
    /key "paths\.sysfs" is 5, but must be an absolute path/,
  ],
  ["a relative path", '[paths]\nsysfs = "sys"\n', /"paths\.sysfs" .*it is not an absolute path/],
  [
    "a path with ..",
    '[paths]\nstate_dir = "/var/lib/../../etc"\n',
    /it contains a '\.\.' component/,
  ],
  ["a NUL in a path", '[paths]\nproc = "/proc\\u0000x"\n', /"paths\.proc" .*NUL/],
  [
    "a word for a duration",
    '[kernel]\nwatch_interval = "fast"\n',
    /"kernel\.watch_interval" is "fast"/,
  ],
  ["a negative duration", "[kernel]\nwatch_interval = -1\n", /"kernel\.watch_interval" is -1/],
  [
    "a string for a unit list",
    '[phases.prepare]\nstop = "vmm.service"\n',
    /"phases\.prepare\.stop"/,
  ],
  ["a number in a unit list", "[phases.prepare]\nstop = [1]\n", /"1" is not a unit name/],
  ["a unit without a suffix", '[phases.prepare]\nstart = ["vmm"]\n', /"vmm" is not a unit name/],
  [
    "a unit listed twice",
    '[phases.prepare]\nstop = ["a.service", "a.service"]\n',
    /lists a unit twice/,
  ],
  ["a string for an integer", '[store]\nhistory = "50"\n', /"store\.history" is "50"/],
  ["a float for an integer", "[store]\nhistory = 1.5\n", /"store\.history" is 1\.5/],
  ["a string for a table of properties", '[devices]\nmatch = "x"\n', /"devices\.match"/],
  ["a number as a property value", "[devices]\nmatch = { DRIVER = 1 }\n", /the value of "DRIVER"/],
  ["a lower-case property name", '[devices]\nmatch = { driver = "x" }\n', /the name "driver"/],
  ["a string for a flag", '[compat]\nallow_unknown = "yes"\n', /"compat\.allow_unknown" is "yes"/],
  ["a list for a path", '[target]\nkernel = ["/boot/x"]\n', /"target\.kernel"/],
  ["a value for a section", 'paths = "x"\n', /"paths" is "x", but must be a table/],
  [
    "a string for an argument list",
    '[kexec]\nissue_command = "/bin/x"\n',
    /"kexec\.issue_command"/,
  ],
  ["a tag with a slash", '[devices]\ntag = "../etc"\n', /"devices\.tag" is "\.\.\/etc"/],
  [
    "a bus address that is not a unix socket",
    '[systemd]\nbus_address = "tcp:host=x"\n',
    /"systemd\.bus_address"/,
  ],
  ["a date for a text", "[target]\ncmdline = 1979-05-27\n", /"target\.cmdline" is a date/],
  ["a string for slot counts", '[fleet]\ngroup_slots = { a = "x" }\n', /"fleet\.group_slots"/],
];

const RANGES: [string, string, RegExp][] = [
  ["history 0", "[store]\nhistory = 0\n", /"store\.history" is 0 \(it is out of range\)/],
  ["history too large", "[store]\nhistory = 100001\n", /out of range/],
  ["a watch interval below 10ms", '[kernel]\nwatch_interval = "1ms"\n', /out of range/],
  ["a watch interval above 1min", '[kernel]\nwatch_interval = "2h"\n', /out of range/],
  [
    "jitter above 100",
    "[fleet]\nretry_jitter = 101\n",
    /"fleet\.retry_jitter" is 101 \(it is out of range\)/,
  ],
  ["a reclaim timeout above 1h", '[devices]\nreclaim_timeout = "2h"\n', /out of range/],
  ["a negative history", "[store]\nhistory = -5\n", /out of range/],
  ["a zero slot count", "[fleet]\nslots = 0\n", /"fleet\.slots" is 0/],
];

const UNKNOWN: [string, string, RegExp][] = [
  ["an unknown section", "[nope]\nx = 1\n", /unknown section "nope"/],
  [
    "a misspelt key",
    '[log]\nlevle = "info"\n',
    /unknown key "log\.levle" Remove it or correct the spelling/,
  ],
  ["a key in the wrong section", '[log]\nsysfs = "/sys"\n', /did you mean "paths\.sysfs"\?/],
  ["an unknown phase", '[phases.reboto]\nstop = ["a.service"]\n', /unknown key "phases\.reboto"/],
  [
    "an unknown nested key",
    '[fleet.etcd]\nendpointz = ["http://x:1"]\n',
    /unknown key "fleet\.etcd\.endpointz"/,
  ],
];

function deep(open: string, close: string, depth: number, prefix = "x = "): string {
  return `${prefix}${open.repeat(depth)}1${close.repeat(depth)}\n`;
}

/** The configuration cases. */
export const CONFIG_CASES: CaseTable = {
  category: "config",
  cases: [
    ...SYNTAX.map(([name, toml]) => dropIn(`syntax: ${name}`, toml, syntax)),
    ...VALUES.map(([name, toml, says]) => dropIn(`type: ${name}`, toml, says)),
    ...RANGES.map(([name, toml, says]) => dropIn(`range: ${name}`, toml, says)),
    ...UNKNOWN.map(([name, toml, says]) => dropIn(`unknown: ${name}`, toml, says)),
    dropIn(
      "cross-check: an initrd without a kernel",
      '[target]\nkernel = ""\ninitrd = "/boot/initrd"\n',
      /"target\.initrd" is set but "target\.kernel" is not/,
    ),
    dropIn(
      "cross-check: issue = command without a command",
      '[kexec]\nissue = "command"\n',
      /kexec\.issue is "command" but kexec\.issue_command/,
    ),
    dropIn(
      "cross-check: a unit stopped and started",
      '[phases.prepare]\nstop = ["a.service"]\nstart = ["a.service"]\n',
      /both stopped and started/,
    ),
    {
      ...dropIn(
        "huge: 2 MiB of comments",
        `# ${"x".repeat(2 * 1024 * 1024)}\n`,
        /has \d+ bytes, more than the 1048576/,
      ),
      strace: true,
    },
    dropIn("huge: a 900 KiB key", `${"k".repeat(900 * 1024)} = 1\n`, /unknown section "k{10}/),
    dropIn(
      "huge: 20,000 unknown sections",
      Array.from({ length: 20_000 }, (_, i) => `[s${i}]\n`).join(""),
      /unknown section "s0"[\s\S]*… and 19950 more configuration problems/,
    ),
    dropIn("binary: random bytes", garbage(4096, 7), /is not UTF-8 text/),
    dropIn(
      "binary: Latin-1 text",
      new Uint8Array([0x5b, 0x6c, 0x6f, 0x67, 0x5d, 0x0a, 0x23, 0xe9, 0x0a]),
      /is not UTF-8 text/,
    ),
    dropIn("binary: NUL bytes in a comment", "# a\0b\n[log]\n", syntax),
    dropIn("binary: NUL bytes in a value", '[log]\nlevel = "in\0fo"\n', syntax),
    dropIn(
      "binary: a UTF-16 byte order mark",
      new Uint8Array([0xff, 0xfe, 0x5b, 0x00, 0x6c, 0x00]),
      /is not UTF-8 text|is not valid TOML/,
    ),
    dropIn(
      "binary: an ELF header",
      new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, ...garbage(64, 3)]),
      /is not UTF-8 text|is not valid TOML/,
    ),
    dropIn("nesting: 100,000 nested arrays", deep("[", "]", 100_000), syntax),
    dropIn(
      "nesting: 20,000 nested inline tables",
      `x = ${"{ a = ".repeat(20_000)}1${" }".repeat(20_000)}\n`,
      syntax,
    ),
    dropIn(
      "nesting: a 5,000-level table header",
      `[${Array.from({ length: 5000 }, () => "a").join(".")}]\n`,
      /unknown section "a"/,
    ),
    dropIn(
      "nesting: nested arrays inside a valid key",
      deep("[", "]", 50_000, "[phases.prepare]\nstop = "),
      syntax,
    ),
    {
      name: "file: a FIFO as a drop-in",
      setup: (host) => plantFifo(bad(host)),
      argv: ["config", "--json"],
      code: EXIT.config,
      stderr: /60-bad\.toml" is not a regular file/,
      strace: true,
    },
    {
      name: "file: a directory as a drop-in",
      setup: (host) => plantDir(bad(host)),
      argv: ["config", "--json"],
      code: EXIT.config,
      stderr: /60-bad\.toml": it is a directory/,
    },
    {
      name: "file: a dangling symlink as a drop-in",
      setup: (host) => plantLink(bad(host), `${host.dir}/nowhere.toml`),
      argv: ["config", "--json"],
      code: EXIT.config,
      stderr: /Cannot read config file ".*60-bad\.toml": it does not exist|No such file/,
    },
    {
      name: "file: a symlink loop as a drop-in",
      setup: async (host) => {
        const dir = `${host.configRoot}/etc/liveupdate/config.d`;
        await plantLink(`${dir}/60-bad.toml`, `${dir}/61-loop.toml`);
        await plantLink(`${dir}/61-loop.toml`, `${dir}/60-bad.toml`);
      },
      argv: ["config", "--json"],
      code: EXIT.config,
      stderr: /Cannot read config file ".*60-bad\.toml": .*(symbolic links|loop)/i,
    },
    {
      name: "file: the config directory is a file",
      setup: async (host) => {
        await Deno.remove(`${host.configRoot}/etc/liveupdate/config.d`, { recursive: true });
        await plant(`${host.configRoot}/etc/liveupdate/config.d`, "[log]\n");
      },
      argv: ["config", "--json"],
      code: EXIT.config,
      stderr: /Config directory ".*config\.d" is not a directory/,
    },
    {
      name: "file: the runtime config directory is a FIFO",
      setup: (host) => plantFifo(`${host.configRoot}/run/liveupdate/config.d`),
      argv: ["config", "--json"],
      code: EXIT.config,
      stderr: /config\.d/,
    },
    {
      name: "file: a drop-in that masks the host's with an empty file, then a bad value",
      setup: async (host) => {
        await plant(`${host.configRoot}/run/liveupdate/config.d/50-host.toml`, "");
        await plant(bad(host), "[store]\nhistory = 0\n");
      },
      argv: ["status"],
      code: EXIT.config,
      stderr: /"store\.history" is 0/,
    },
    {
      name: "file: a bad drop-in refuses a changing command before anything happens",
      setup: (host) => plant(bad(host), "[store]\nhistory = 0\n"),
      argv: ["prepare"],
      code: EXIT.config,
      stderr: /"store\.history" is 0/,
      strace: true,
      after: async (host) => {
        await Deno.stat(host.state).then(
          () => {
            throw new Error("the state directory was created");
          },
          () => {},
        );
      },
    },
  ],
};

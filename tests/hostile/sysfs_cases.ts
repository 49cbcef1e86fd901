/**
 * Hostile sysfs attribute contents in a plain-file sysfs tree: garbage, empty,
 * huge and binary values in `state`, `requested`, `preserved`, `reclaimed`; FIFOs,
 * directories and symlink loops where attributes belong; missing files. `status`
 * and `devices` must report them (naming the file) without a crash or a hang.
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
import { type HostileHost, TAGGED } from "./_host.ts";

const global = (host: HostileHost, name: string) => `${host.sysfs}/kernel/liveupdate/${name}`;
const flag = (host: HostileHost, name: string, device = TAGGED) =>
  `${host.sysfs}/devices/${device}/liveupdate/${name}`;

/** Contents no RFC v1 attribute ever holds. */
const GARBAGE: [string, string | Uint8Array][] = [
  ["empty", ""],
  ["upper case", "NORMAL\n"],
  ["two lines", "normal\nprepared\n"],
  ["a trailing blank", "normal \n"],
  ["a carriage return", "normal\r\n"],
  ["a number", "2\n"],
  ["NUL bytes", "\0\0\0\n"],
  ["binary", garbage(64, 11)],
  ["a page and more", "x".repeat(5000)],
  ["non-ASCII", "nörmal\n"],
  ["a negative number", "-1\n"],
  ["a JSON document", '{"state":"normal"}\n'],
];

const stateCase = ([name, contents]: [string, string | Uint8Array]): HostileCase => ({
  name: `state holds ${name}`,
  setup: (host) => plant(global(host, "state"), contents),
  argv: ["status", "--json"],
  code: EXIT.ok,
  stdout: /"available": false[\s\S]*kernel\/liveupdate\/state (is empty|holds)/,
});

const FLAG_GARBAGE = GARBAGE.filter(([name]) =>
  ["empty", "two lines", "a number", "NUL bytes", "binary", "a page and more", "upper case"]
    .includes(name)
);

const flagCase =
  (file: string) => ([name, contents]: [string, string | Uint8Array]): HostileCase => ({
    name: `${file} holds ${name}`,
    setup: async (host) => {
      // After a live update the report reads every flag (before it, requested only).
      if (file !== "requested") await plant(global(host, "state"), "updated\n");
      await plant(flag(host, file), contents);
    },
    argv: ["devices", "--json"],
    code: EXIT.ok,
    stdout: new RegExp(`liveupdate/${file} (is empty|holds)`),
  });

/** The sysfs cases. */
export const SYSFS_CASES: CaseTable = {
  category: "sysfs",
  cases: [
    ...GARBAGE.map(stateCase),
    ...FLAG_GARBAGE.map(flagCase("requested")),
    ...FLAG_GARBAGE.slice(0, 4).map(flagCase("preserved")),
    ...FLAG_GARBAGE.slice(0, 4).map(flagCase("reclaimed")),
    {
      name: "state is a FIFO",
      setup: (host) => plantFifo(global(host, "state")),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /"available": false[\s\S]*liveupdate\/state is not a file/,
      strace: true,
    },
    {
      name: "state is a directory",
      setup: (host) => plantDir(global(host, "state")),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/state is not a file/,
    },
    {
      name: "state is a symlink loop",
      setup: (host) => plantLink(global(host, "state"), global(host, "state")),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/state cannot be read \(ELOOP\)/,
    },
    {
      name: "state is missing",
      setup: (host) => Deno.remove(global(host, "state")),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/state is missing/,
    },
    {
      name: "prepare is a FIFO",
      setup: (host) => plantFifo(global(host, "prepare")),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/prepare is not a file/,
    },
    {
      name: "finish is a directory",
      setup: (host) => plantDir(global(host, "finish")),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/finish is not a file/,
    },
    {
      name: "the liveupdate directory is a file",
      setup: async (host) => {
        await Deno.remove(`${host.sysfs}/kernel/liveupdate`, { recursive: true });
        await plant(`${host.sysfs}/kernel/liveupdate`, "normal\n");
      },
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /kernel\/liveupdate is not a directory/,
    },
    {
      name: "no devices directory",
      setup: (host) => Deno.remove(`${host.sysfs}/devices`, { recursive: true }),
      argv: ["status", "--json"],
      code: EXIT.ok,
      stdout: /No .*\/devices directory: check paths\.sysfs/,
    },
    {
      name: "requested is a FIFO",
      setup: (host) => plantFifo(flag(host, "requested")),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/requested/,
      strace: true,
    },
    {
      name: "preserved is a FIFO",
      setup: async (host) => {
        await plant(global(host, "state"), "updated\n");
        await plantFifo(flag(host, "preserved"));
      },
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/preserved/,
    },
    {
      name: "reclaimed is a directory",
      setup: async (host) => {
        await plant(global(host, "state"), "updated\n");
        await plantDir(flag(host, "reclaimed"));
      },
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/reclaimed/,
    },
    {
      name: "requested is a symlink loop",
      setup: (host) => plantLink(flag(host, "requested"), flag(host, "requested")),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/requested/,
    },
    {
      name: "the device's liveupdate directory is missing",
      setup: (host) =>
        Deno.remove(`${host.sysfs}/devices/${TAGGED}/liveupdate`, { recursive: true }),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /liveupdate\/requested/,
    },
    {
      name: "the device's uevent is huge",
      setup: (host) => plant(`${host.sysfs}/devices/${TAGGED}/uevent`, "A=".repeat(1 << 20)),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /"selected"/,
    },
    {
      name: "an ancestor's uevent is a FIFO",
      setup: (host) => plantFifo(`${host.sysfs}/devices/pci0000:00/0000:00:01.0/uevent`),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /"selected"/,
    },
    {
      name: "kexec_loaded holds garbage",
      setup: (host) => plant(`${host.sysfs}/kernel/kexec_loaded`, garbage(32, 5)),
      argv: ["status", "--json"],
      code: EXIT.ok,
    },
    {
      name: "state holds garbage, for check",
      setup: (host) => plant(global(host, "state"), "garbage\n"),
      argv: ["check"],
      code: EXIT.refused,
      // check's verdict and reasons go to standard output.
      stdout: /prepare would refuse[\s\S]*liveupdate\/state holds "garbage\\n"/,
      quiet: true,
    },
    {
      name: "state holds garbage, for recover",
      setup: (host) => plant(global(host, "state"), "garbage\n"),
      argv: ["recover"],
      code: EXIT.ok,
    },
    {
      name: "state holds garbage, for finish",
      setup: (host) => plant(global(host, "state"), garbage(100, 3)),
      argv: ["finish"],
      // finish runs at every boot: no usable interface and no record is nothing to do.
      code: EXIT.ok,
      stderr: /Nothing to finish: .*liveupdate\/state holds/,
      strace: true,
    },
    {
      name: "state is prepared with nothing recorded, for cancel",
      setup: (host) => plant(global(host, "state"), "prepared\n"),
      argv: ["cancel"],
      code: EXIT.ok,
    },
    {
      name: "state is updated with nothing recorded, for status",
      setup: (host) => plant(global(host, "state"), "updated\n"),
      argv: ["status"],
      code: EXIT.ok,
    },
  ],
};

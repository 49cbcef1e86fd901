/**
 * Hostile udev databases: data files with lines udev never writes, binary, huge
 * or truncated files; tag index entries with unknown id forms, path tricks
 * (`..`), missing data; FIFOs, directories and symlinks where files belong.
 * `devices` must name each problem (file and line) and go on with the others;
 * `check` must refuse to plan on a database it cannot read.
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
import { type HostileHost, TAGGED_ID } from "./_host.ts";

const data = (host: HostileHost, id = TAGGED_ID) => `${host.udev}/data/${id}`;
const tagged = (host: HostileHost, id: string) => `${host.udev}/tags/liveupdate/${id}`;

/** A data file for the tagged device that udev never writes; `devices` reports it. */
function badData(name: string, contents: string | Uint8Array, says: RegExp): HostileCase {
  return {
    name: `data: ${name}`,
    setup: (host) => plant(data(host), contents),
    argv: ["devices", "--json"],
    // An incomplete selection: exit 1, the reasons in the JSON document.
    code: EXIT.failed,
    quiet: true,
    stdout: says,
  };
}

/** A tag index entry naming `id` (with no data file unless `withData`). */
function badEntry(name: string, id: string, says: RegExp, withData = false): HostileCase {
  return {
    name: `index: ${name}`,
    setup: async (host) => {
      await plant(tagged(host, id), "");
      if (withData) await plant(data(host, id), "E:DRIVER=x\nG:liveupdate\nQ:liveupdate\nV:1\n");
    },
    argv: ["devices", "--json"],
    // An incomplete selection: exit 1, the reasons in the JSON document.
    code: EXIT.failed,
    quiet: true,
    stdout: says,
  };
}

const GOOD = "I:1700000000000000\nE:DRIVER=vfio-pci\nG:liveupdate\nQ:liveupdate\nV:1\n";

/** The udev database cases. */
export const UDEV_CASES: CaseTable = {
  category: "udev",
  cases: [
    badData(
      "a line without a colon",
      "I:1\nE:DRIVER=x\nnonsense\n",
      /line 3.*is not a \\"<key>:<value>\\" line/,
    ),
    badData("a property without =", "E:DRIVER\nG:liveupdate\n", /line 1.*is not a property/),
    badData("a property with a blank in its name", "E:DRI VER=x\n", /line 1.*is not a property/),
    badData("a property with an empty name", "E:=x\n", /line 1.*is not a property/),
    badData("a time that is not a number", "I:soon\n", /line 1.*is not a time in microseconds/),
    badData("a negative time", "I:-5\n", /line 1.*is not a time/),
    badData("a huge time", `I:${"9".repeat(40)}\n`, /line 1.*is not a time/),
    badData("a link priority that is not a number", "L:high\n", /line 1.*is not a link priority/),
    badData("a version that is not a number", "V:one\n", /line 1.*is not a database version/),
    badData("an empty tag", "G:\n", /line 1.*does not name a valid tag/),
    badData("a tag with a blank", "G:live update\n", /line 1.*does not name a valid tag/),
    badData("an empty symlink", "S:\n", /line 1.*names no symlink/),
    badData("NUL bytes", "E:DRIVER=x\0y\nG:liveupdate\n", /contains NUL bytes/),
    badData("no final newline (truncated)", "E:DRIVER=x\nG:liveup", /last line has no newline/),
    badData("binary garbage", garbage(512, 21), /contains NUL bytes|is not a|last line/),
    badData("CRLF line ends", "E:DRIVER=x\r\nG:liveupdate\r\n", /does not name a valid tag|is not/),
    badData("a line of a single character", "E\n", /line 1.*is not a \\"<key>:<value>\\" line/),
    badData(
      "a huge file (9 MiB of properties)",
      `${GOOD}${"E:PAD=".concat("x".repeat(1000), "\n").repeat(9 * 1024)}`,
      /"\+pci:0000:01:00\.0"/,
    ),
    {
      name: "data: a FIFO",
      setup: (host) => plantFifo(data(host)),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /"\+pci:0000:01:00\.0"/,
      strace: true,
    },
    {
      name: "data: a directory",
      setup: (host) => plantDir(data(host)),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /Cannot read the udev data file .*\(EISDIR\)/,
    },
    {
      name: "data: a symlink to a secret",
      setup: (host) => plantLink(data(host), host.secret),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /udev data file .* is a symlink; udev writes plain files there/,
    },
    {
      name: "data: missing for an index entry",
      setup: (host) => Deno.remove(data(host)),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /"\+pci:0000:01:00\.0"/,
    },
    badEntry("an id of no known form", "x123", /"x123"[\s\S]*none of udev's id forms/),
    badEntry("a block id without a minor", "b8:", /"b8:"/),
    badEntry("a device number out of range", "c99999:1", /out of range/),
    badEntry("interface index 0", "n0", /"n0"/),
    badEntry("a subsystem id without a name", "+pci:", /"\+pci:"/),
    badEntry("a subsystem id of only '+'", "+", /"\+"/),
    badEntry("a name that is ..", "+pci:..", /"\+pci:\.\."/, true),
    badEntry("a driver id", "+drivers:pci:vfio-pci", /names the driver \\"vfio-pci\\"/, true),
    badEntry(
      "a subsystem that is not there",
      "+nosuchbus:dev0",
      /neither \\"bus\/nosuchbus\\" nor \\"class\/nosuchbus\\"/,
      true,
    ),
    badEntry("a device that vanished", "+pci:0000:09:00.0", /"\+pci:0000:09:00\.0"/, true),
    badEntry("a name with a control character", "+pci:a\u0001b", /"\+pci:a\\u0001b"/),
    badEntry("a name with a newline", "+pci:a\nb", /"\+pci:a\\nb"/),
    badEntry("a 255-byte name", `+pci:${"a".repeat(250)}`, /"\+pci:a{10}/, true),
    {
      name: "index: an entry that is a directory",
      setup: (host) => plantDir(tagged(host, "+pci:0000:01:00.1")),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /is not a regular file; udev writes empty files there/,
    },
    {
      name: "index: an entry that is a FIFO",
      setup: (host) => plantFifo(tagged(host, "+pci:0000:01:00.1")),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /is not a regular file; udev writes empty files there/,
    },
    {
      name: "index: the tag directory is a file",
      setup: async (host) => {
        await Deno.remove(`${host.udev}/tags/liveupdate`, { recursive: true });
        await plant(`${host.udev}/tags/liveupdate`, "x\n");
      },
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /tags\/liveupdate\\" is not a directory/,
    },
    {
      name: "index: the tag directory is a symlink loop",
      setup: async (host) => {
        await Deno.remove(`${host.udev}/tags/liveupdate`, { recursive: true });
        await plantLink(`${host.udev}/tags/liveupdate`, `${host.udev}/tags/liveupdate`);
      },
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /tags\/liveupdate/,
    },
    {
      name: "index: 20,000 bogus entries",
      setup: async (host) => {
        const dir = `${host.udev}/tags/liveupdate`;
        for (let i = 0; i < 20_000; i++) await Deno.writeTextFile(`${dir}/x${i}`, "");
      },
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /tags\/liveupdate/,
    },
    {
      name: "index: no database at all",
      setup: (host) => Deno.remove(host.udev, { recursive: true }),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /"selected": \[\]/,
    },
    {
      name: "data: a bad data file, for check",
      setup: (host) => plant(data(host), "E:DRIVER\n"),
      argv: ["check"],
      code: EXIT.refused,
      quiet: true,
      stdout: /prepare would refuse/,
    },
  ],
};

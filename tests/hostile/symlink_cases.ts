/**
 * Symlink tricks: sysfs links that lead outside `<sysfs>/devices`, device and
 * `liveupdate` directories or attributes that are symlinks to files elsewhere, a
 * kernel/liveupdate directory that is one, drop-ins symlinked to secrets, and the
 * state, records and runtime directories as symlinks. The agent must refuse each
 * (never read a secret into its output, never write through a link) and say so.
 *
 * The cases that write (`prepare`, `recover`) run against the shared private
 * systemd manager, so the update gets as far as the kernel writes; the simulated
 * kernel cannot hold symlinks, so the host's sysfs is the plain-file tree, where
 * a prepare never reaches state "prepared" and is rolled back.
 *
 * @module
 */

import { type CaseTable, EXIT, type HostileCase, plant, plantLink } from "./_case.ts";
import { type HostileHost, TAGGED } from "./_host.ts";
import { goodRecord, PLAN } from "./record_cases.ts";

const device = (host: HostileHost, path = TAGGED) => `${host.sysfs}/devices/${path}`;
const outside = (host: HostileHost) => `${host.dir}/outside`;

/** An outside directory shaped like a device's liveupdate directory, all flags 0. */
async function outsideFlags(host: HostileHost): Promise<string> {
  const dir = `${outside(host)}/liveupdate`;
  for (const flag of ["requested", "preserved", "reclaimed"]) await plant(`${dir}/${flag}`, "0\n");
  return dir;
}

/** Checks that nothing outside the host's allowed paths was written to. */
async function outsideUntouched(host: HostileHost): Promise<void> {
  for (const flag of ["requested", "preserved", "reclaimed"]) {
    const path = `${outside(host)}/liveupdate/${flag}`;
    const text = await Deno.readTextFile(path).catch(() => "0\n");
    if (text !== "0\n") throw new Error(`${path} was written: ${JSON.stringify(text)}`);
  }
  if (!(await Deno.readTextFile(host.secret)).includes("not-a-real-hash")) {
    throw new Error("the secret was changed");
  }
}

/** A prepare that must be refused or rolled back without a write through a planted link. */
function prepareWith(
  name: string,
  setup: HostileCase["setup"],
  says: RegExp,
  code: number = EXIT.rolledBack,
): HostileCase {
  return {
    name,
    setup,
    argv: ["prepare", "--no-kexec"],
    code,
    stderr: says,
    systemd: true,
    strace: true,
    after: outsideUntouched,
  };
}

/** The symlink cases. */
export const SYMLINK_CASES: CaseTable = {
  category: "symlinks",
  cases: [
    {
      name: "a class link to an absolute path",
      setup: (host) => plantLink(`${host.sysfs}/class/misc/tun`, "/etc"),
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /misc\/tun\\" is refused: it points to the absolute path \\"\/etc\\"|"selected"/,
    },
    {
      name: "a bus link climbing out of sysfs",
      setup: (host) =>
        plantLink(`${host.sysfs}/bus/pci/devices/0000:01:00.0`, "../../../../../etc"),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /leads outside the sysfs root|not below \\"devices\/\\"/,
    },
    {
      name: "a bus link with .. after a real component",
      setup: (host) =>
        plantLink(`${host.sysfs}/bus/pci/devices/0000:01:00.0`, "../../../devices/../../etc"),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /is not a plain relative path/,
    },
    {
      name: "a bus link to a directory outside devices/",
      setup: async (host) => {
        await Deno.mkdir(`${host.sysfs}/firmware/x`, { recursive: true });
        await plantLink(`${host.sysfs}/bus/pci/devices/0000:01:00.0`, "../../../firmware/x");
      },
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /leads to \\"firmware\/x\\", not below \\"devices\/\\"/,
    },
    {
      name: "a device directory that is a symlink to a copy elsewhere",
      setup: async (host) => {
        await outsideFlags(host);
        await Deno.remove(device(host), { recursive: true });
        await plantLink(device(host), outside(host));
      },
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /is a symlink; a device path must lead through real directories only/,
      strace: true,
    },
    {
      name: "an ancestor directory that is a symlink",
      setup: async (host) => {
        const port = `${host.sysfs}/devices/pci0000:00/0000:00:01.0`;
        await Deno.rename(port, `${outside(host)}-port`);
        await plantLink(port, `${outside(host)}-port`);
      },
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /0000:00:01\.0\\" is a symlink/,
    },
    {
      name: "the sysfs root itself is a symlink (the configured path)",
      setup: async (host) => {
        await Deno.rename(host.sysfs, `${host.dir}/real-sys`);
        await plantLink(host.sysfs, `${host.dir}/real-sys`);
      },
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /"selected": \[\s*\{\s*"path": "pci0000:00\/0000:00:01\.0\/0000:01:00\.0"/,
    },
    {
      name: "a drop-in symlinked to a secret",
      setup: (host) =>
        plantLink(`${host.configRoot}/etc/liveupdate/config.d/60-shadow.toml`, host.secret),
      argv: ["config", "--json"],
      code: EXIT.config,
      stderr:
        /60-shadow\.toml" is a symlink to ".*etc-shadow", outside the configuration directories/,
      strace: true,
    },
    {
      name: "a drop-in symlinked into another configuration directory",
      setup: async (host) => {
        await plant(
          `${host.configRoot}/usr/lib/liveupdate/config.d/10-vendor.toml`,
          '[log]\nlevel = "debug"\n',
        );
        await plantLink(
          `${host.configRoot}/etc/liveupdate/config.d/10-vendor.toml`,
          `${host.configRoot}/usr/lib/liveupdate/config.d/10-vendor.toml`,
        );
      },
      argv: ["config", "--json"],
      code: EXIT.ok,
      stdout: /"level": "debug"/,
    },
    {
      name: "a drop-in symlinked through /proc/self/root to a secret",
      setup: (host) =>
        plantLink(
          `${host.configRoot}/etc/liveupdate/config.d/60-proc.toml`,
          `/proc/self/root${host.secret}`,
        ),
      argv: ["config", "--json"],
      code: EXIT.config,
      stderr: /60-proc\.toml" is a symlink to .*outside the configuration directories/,
    },
    {
      name: "the state directory is a symlink, for recover",
      setup: async (host) => {
        await Deno.mkdir(`${outside(host)}/state`, { recursive: true });
        await plantLink(host.state, `${outside(host)}/state`);
      },
      argv: ["recover"],
      code: EXIT.failed,
      stderr: /state directory ".*\/state" is a symlink/,
      strace: true,
    },
    {
      name: "the records directory is a symlink, for recover",
      setup: async (host) => {
        await Deno.mkdir(`${outside(host)}/attempts`, { recursive: true });
        await Deno.mkdir(host.state, { recursive: true, mode: 0o700 });
        await plantLink(`${host.state}/attempts`, `${outside(host)}/attempts`);
      },
      argv: ["recover"],
      code: EXIT.failed,
      stderr: /records directory ".*\/attempts" is a symlink/,
    },
    {
      name: "the runtime directory is a symlink, for recover",
      setup: async (host) => {
        await Deno.mkdir(`${outside(host)}/run`, { recursive: true });
        await plantLink(host.run, `${outside(host)}/run`);
      },
      argv: ["recover"],
      code: EXIT.failed,
      stderr: /runtime directory ".*\/run" \(paths\.runtime_dir\) is a symlink/,
      after: async (host) => {
        for await (const entry of Deno.readDir(`${outside(host)}/run`)) {
          throw new Error(`created ${entry.name} through the link`);
        }
      },
    },
    {
      name: "the state directory is a symlink, for devices",
      setup: async (host) => {
        await Deno.mkdir(`${outside(host)}/state`, { recursive: true });
        await plant(
          `${outside(host)}/state/devices-requested.json`,
          '{"version":1,"devices":[]}\n',
        );
        await plantLink(host.state, `${outside(host)}/state`);
      },
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /"selected"/,
    },
    {
      name: "the udev tag directory is a symlink to another tag",
      setup: async (host) => {
        await Deno.rename(`${host.udev}/tags/liveupdate`, `${host.udev}/tags/other`);
        await plantLink(`${host.udev}/tags/liveupdate`, `${host.udev}/tags/other`);
      },
      argv: ["devices", "--json"],
      code: EXIT.ok,
      stdout: /"selected": \[\s*\{/,
    },
    prepareWith(
      "prepare: no trick (the baseline: every write of a whole prepare traced)",
      undefined,
      /is prepared; kexec with 'systemctl kexec' or cancel/,
      EXIT.ok,
    ),
    prepareWith(
      "prepare: the device's liveupdate directory is a symlink elsewhere",
      async (host) => {
        const dir = await outsideFlags(host);
        await Deno.remove(`${device(host)}/liveupdate`, { recursive: true });
        await plantLink(`${device(host)}/liveupdate`, dir);
      },
      // The first step fails, nothing was changed: exit 1, not a rollback.
      /refused to write .*liveupdate\/requested \(ELOOP\)/,
      EXIT.failed,
    ),
    prepareWith(
      "prepare: the device's requested flag is a symlink to a secret",
      (host) => plantLink(`${device(host)}/liveupdate/requested`, host.secret),
      /Preflight refused the live update: .*refused to read .*liveupdate\/requested \(ELOOP\)/,
      EXIT.refused,
    ),
    prepareWith(
      "prepare: kernel/liveupdate is a symlink elsewhere",
      async (host) => {
        const dir = `${outside(host)}/kernel-liveupdate`;
        await Deno.mkdir(outside(host), { recursive: true });
        await Deno.rename(`${host.sysfs}/kernel/liveupdate`, dir);
        await plantLink(`${host.sysfs}/kernel/liveupdate`, dir);
      },
      /refused to write .*kernel\/liveupdate\/prepare \(ELOOP\)/,
    ),
    prepareWith(
      "prepare: the metrics file is a symlink to a secret (replaced, not written through)",
      (host) => plantLink(host.metrics, host.secret),
      /is prepared/,
      EXIT.ok,
    ),
    prepareWith(
      "prepare: the state directory is a symlink",
      async (host) => {
        await Deno.mkdir(`${outside(host)}/state`, { recursive: true });
        await plantLink(host.state, `${outside(host)}/state`);
      },
      /Preflight refused the live update: The state directory ".*\/state" is a symlink/,
      EXIT.refused,
    ),
    {
      name: "recover: an open record without phases is set aside (it crashed the rollback)",
      setup: (host) =>
        plant(
          `${host.state}/attempts/20261125T200000Z-abc123.json`,
          JSON.stringify(goodRecord({ status: "rolling-back", outcome: undefined })),
        ),
      argv: ["recover"],
      code: EXIT.failed,
      stderr: /cannot be used \(field "plan" has no "phases" list\); moved it to/,
      systemd: true,
    },
    {
      name: "recover: a record whose undo names devices outside sysfs",
      setup: (host) => {
        const hostile = {
          changes: [
            { path: "../../../outside", from: false, to: true, reason: "selected" },
            { path: `${TAGGED}/../../../../../outside`, from: false, to: true, reason: "selected" },
            { path: "/etc", from: false, to: true, reason: "selected" },
          ],
          ownedBefore: [{ path: "../../../outside", id: "+pci:x" }],
        };
        return plant(
          `${host.state}/attempts/20261125T200000Z-abc123.json`,
          JSON.stringify(goodRecord({
            status: "rolling-back",
            outcome: undefined,
            plan: PLAN,
            steps: [{
              name: "request-devices",
              status: "done",
              started: "2026-11-25T20:00:00.000Z",
              undo: hostile,
              result: { undo: hostile },
            }],
          })),
        );
      },
      argv: ["recover"],
      code: EXIT.failed,
      stderr: /Cannot restore the requested flag of "\/etc" to 0: Device path "\/etc" is absolute/,
      systemd: true,
      strace: true,
      after: outsideUntouched,
    },
    {
      name: "recover: a record whose undo would record devices outside sysfs as the agent's",
      setup: (host) => {
        const hostile = { changes: [], ownedBefore: [{ path: "../../../outside", id: "+pci:x" }] };
        return plant(
          `${host.state}/attempts/20261125T200000Z-abc123.json`,
          JSON.stringify(goodRecord({
            status: "rolling-back",
            outcome: undefined,
            plan: PLAN,
            steps: [{
              name: "request-devices",
              status: "done",
              started: "2026-11-25T20:00:00.000Z",
              undo: hostile,
              result: { undo: hostile },
            }],
          })),
        );
      },
      argv: ["recover"],
      code: EXIT.failed,
      stderr: /Refusing to record the device path "\.\.\/\.\.\/\.\.\/outside"/,
      systemd: true,
      after: async (host) => {
        const record = await Deno.readTextFile(`${host.state}/devices-requested.json`)
          .catch(() => "");
        if (record.includes("outside")) throw new Error(`recorded: ${record}`);
      },
    },
  ],
};

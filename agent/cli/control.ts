/**
 * The control surface: who may run the commands that change the host. Reading
 * (`status`, `check`, `devices`, `config`, `fleet status`, …) is open to anyone
 * the files let read; changing (`prepare`, `finish`, `cancel`, `recover`, `watch`,
 * `fleet release`, the rehearsal `demo`) needs root or membership of
 * `control.group`. Anyone else gets a clear error and exit code 9 before the
 * agent touches anything.
 *
 * The check is the agent's own guard: the kernel's files, the state directory
 * (0700) and systemd's manager enforce root anyway, so a member of the group also
 * needs the privileges to do what the command does (through a service unit, or
 * ACLs the site grants). What it gives is one clear sentence instead of a
 * permission error halfway through an update.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { Libc } from "../host/mod.ts";

/** Commands that change the host, by name (`fleet` only with `release`, `sessions` but for `status`). */
const CHANGING: Readonly<Record<string, (positionals: readonly string[]) => boolean>> = {
  prepare: () => true,
  finish: () => true,
  cancel: () => true,
  recover: () => true,
  watch: () => true,
  demo: () => true,
  fleet: (positionals) => positionals[0] === "release",
  sessions: (positionals) => positionals[0] !== "status",
};

/** Commands that only read (the test checks every command is in one of the two lists). */
export const READ_ONLY_COMMANDS: readonly string[] = [
  "status",
  "check",
  "devices",
  "config",
  "history",
  "schema",
  "wait",
];

/** Every command name that can change the host (with `fleet`: its `release`). */
export const CHANGING_COMMANDS: readonly string[] = Object.keys(CHANGING);

/** Whether `command` with `positionals` changes the host. */
export function changesHost(command: string, positionals: readonly string[]): boolean {
  return CHANGING[command]?.(positionals) ?? false;
}

/** Who runs the agent. */
export interface Identity {
  /** The effective user id. */
  uid(): number;
  /**
   * Whether the process is in group `name` (effective or supplementary);
   * undefined when the group does not exist.
   */
  inGroup(name: string): boolean | undefined;
}

/** A changing command run by someone who may not. */
export class NotPermittedError extends AgentError {
  override name = "NotPermittedError";

  constructor(message: string) {
    super(message, { exitCode: ExitCode.NotPermitted });
  }
}

/**
 * Throws {@link NotPermittedError} unless `identity` is root or in `group`
 * (`control.group`, "" for none). `what` names the command ("prepare",
 * "fleet release").
 */
export function checkControl(identity: Identity, group: string, what: string): void {
  const uid = identity.uid();
  if (uid === 0) return;
  const member = group === "" ? false : identity.inGroup(group);
  if (member === true) return;
  const who = group === ""
    ? "root (control.group is not set)"
    : member === undefined
    ? `root or members of control.group "${group}" (no such group exists on this host)`
    : `root or members of control.group "${group}"`;
  throw new NotPermittedError(
    `'liveupdate-agent ${what}' changes the host and may be run only by ${who}; this process ` +
      `runs as uid ${uid}. Run it as root (sudo), start its service (systemctl start ` +
      "liveupdate-prepare / liveupdate-cancel), or add the user to control.group.",
  );
}

const GROUP_STRUCT = 32; // struct group: char *name, *passwd; gid_t gid; char **mem
const GROUP_BUFFER = 64 * 1024;

/**
 * The identity of this process: the uid from Deno (`--allow-sys=uid`), groups
 * through libc (getegid, getgroups, getgrnam_r), asked only when the uid is not
 * root. Needs `--allow-ffi` for the groups.
 */
export function processIdentity(libc: () => Libc): Identity {
  return {
    uid: () => Deno.uid() ?? libc().symbols.geteuid(),
    inGroup(name) {
      const { symbols } = libc();
      const group = new Uint8Array(GROUP_STRUCT);
      const buffer = new Uint8Array(GROUP_BUFFER);
      const result = new BigUint64Array(1);
      const cName = new TextEncoder().encode(`${name}\0`);
      const code = symbols.getgrnam_r(
        cName,
        group,
        buffer,
        BigInt(GROUP_BUFFER),
        new Uint8Array(result.buffer),
      );
      if (code !== 0 || result[0] === 0n) return undefined;
      const gid = new DataView(group.buffer).getUint32(16, true);
      if (symbols.getegid() === gid) return true;
      const count = symbols.getgroups(0, new Uint8Array(4));
      if (count <= 0) return false;
      const gids = new Uint32Array(count);
      const got = symbols.getgroups(count, new Uint8Array(gids.buffer));
      return got > 0 && gids.subarray(0, got).includes(gid);
    },
  };
}

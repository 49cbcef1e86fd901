/**
 * Hostile records on disk: attempt records (`<state>/attempts/<id>.json`) that are
 * truncated, of the wrong types or schema, huge, binary, or not files at all; ids
 * with path tricks; a damaged record of the devices the agent requested. `status`
 * must list what it can and name each damaged file; `recover` sets damaged
 * records aside; nothing is followed or written elsewhere.
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

const ID = "20261125T200000Z-abc123";
const recordFile = (host: HostileHost, id = ID) => `${host.state}/attempts/${id}.json`;

/** The smallest plan an open attempt carries (what recovery acts on). */
export const PLAN = {
  phases: ["prepare", "reboot", "updated", "finish", "cancel"].map((phase) => ({
    phase,
    stop: [],
    start: [],
    target: `liveupdate-${phase}.target`,
    timeoutMs: 30_000,
  })),
  devices: { supported: true, selected: [], ancestors: [], changes: [] },
  target: { kernel: "/boot/vmlinuz", cmdline: "liveupdate=on kho=on" },
};

/** A record the agent itself would write (an attempt that ended). */
export function goodRecord(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schema: 1,
    id: ID,
    agent_version: "0.1.0",
    backend: "rfc-v1",
    status: "rolled-back",
    created: "2026-11-25T20:00:00.000Z",
    updated: "2026-11-25T20:01:00.000Z",
    kernels: {
      running: { release: "6.19.0-hostile-old", luo_version: "1.0" },
      target: { release: "6.19.1-hostile-new", luo_version: "1.0" },
    },
    compat: { verdict: "compatible", reason: "same", override: false },
    plan: {},
    steps: [],
    timings: { started: "2026-11-25T20:00:00.000Z" },
    overrides: [],
    outcome: { result: "rolled-back", message: "x", exit_code: 6, at: "2026-11-25T20:01:00.000Z" },
    notes: {},
    ...overrides,
  };
}

/**
 * A damaged record file: `recover` sets it aside (`*.corrupt`), names the file
 * and the problem, and says what may need attention (exit 1).
 */
function damaged(name: string, contents: string | Uint8Array, says: RegExp): HostileCase {
  return {
    name: `attempt: ${name}`,
    setup: async (host) => {
      await Deno.mkdir(`${host.state}/attempts`, { recursive: true, mode: 0o700 });
      await plant(recordFile(host), contents);
    },
    argv: ["recover"],
    code: EXIT.failed,
    stderr: new RegExp(`cannot be used \\(.*${says.source}.*\\); moved it to ".*\\.corrupt"`),
    after: async (host) => {
      await Deno.stat(`${recordFile(host)}.corrupt`);
    },
  };
}

const json = (value: unknown) => JSON.stringify(value);

const WRONG: [string, unknown, RegExp][] = [
  ["not an object", [], /it is not a JSON object/],
  ["null", null, /it is not a JSON object/],
  ["a future schema", goodRecord({ schema: 2 }), /its schema is 2, not 1/],
  ["no schema", { ...goodRecord(), schema: undefined }, /its schema is undefined, not 1/],
  ["a number for the id", goodRecord({ id: 5 }), /field "id" is not a string/],
  [
    "an id with a path",
    goodRecord({ id: "../../etc/passwd" }),
    /field "id" is .*not an attempt id/,
  ],
  [
    "an id that is not the file's",
    goodRecord({ id: "20261125T200000Z-ffffff" }),
    /does not match its file name/,
  ],
  ["an unknown status", goodRecord({ status: "exploded" }), /field "status" is "exploded"/],
  ["a status of the wrong type", goodRecord({ status: 1 }), /field "status" is 1/],
  ["no kernels", goodRecord({ kernels: {} }), /field "kernels" lacks/],
  ["a compat without a verdict", goodRecord({ compat: {} }), /field "compat" lacks/],
  ["a plan that is a list", goodRecord({ plan: [] }), /field "plan" is not an object/],
  ["timings that are a string", goodRecord({ timings: "x" }), /field "timings" is not an object/],
  ["notes that are null", goodRecord({ notes: null }), /field "notes" is not an object/],
  ["overrides of numbers", goodRecord({ overrides: [1] }), /"overrides" is not a list of strings/],
  ["steps that are an object", goodRecord({ steps: {} }), /field "steps" is not a list/],
  [
    "a step without a name",
    goodRecord({ steps: [{ status: "done", started: "x" }] }),
    /step 1 lacks/,
  ],
  [
    "a step with an unknown status",
    goodRecord({ steps: [{ name: "x", status: "gone", started: "x" }] }),
    /step 1 \(\\?"x\\?"\) has an unknown status/,
  ],
  [
    "an outcome without a result",
    goodRecord({ outcome: { message: "x" } }),
    /field "outcome" lacks/,
  ],
];

/** The record cases. */
export const RECORD_CASES: CaseTable = {
  category: "records",
  cases: [
    damaged(
      "truncated JSON",
      json(goodRecord()).slice(0, 100),
      /not valid JSON \(truncated or damaged\)/,
    ),
    damaged("empty", "", /not valid JSON/),
    damaged("binary garbage", garbage(2048, 31), /not valid JSON/),
    damaged("NUL bytes", "\0".repeat(64), /not valid JSON/),
    damaged("100,000 nested arrays", "[".repeat(100_000), /not valid JSON/),
    damaged(
      "a huge record (17 MiB)",
      json(goodRecord({ notes: { pad: "x".repeat(17 * 1024 * 1024) } })),
      /larger than 16777216 bytes/,
    ),
    ...WRONG.map(([name, value, says]) => damaged(name, json(value), says)),
    {
      name: "attempt: a FIFO named like a record",
      setup: async (host) => {
        await Deno.mkdir(`${host.state}/attempts`, { recursive: true, mode: 0o700 });
        await plantFifo(recordFile(host));
      },
      argv: ["status"],
      code: EXIT.ok,
      strace: true,
    },
    {
      name: "attempt: a directory named like a record",
      setup: (host) => plantDir(recordFile(host)),
      argv: ["status"],
      code: EXIT.ok,
    },
    {
      name: "attempt: a symlink to a secret",
      setup: (host) => plantLink(recordFile(host), host.secret),
      argv: ["status"],
      code: EXIT.ok,
    },
    {
      name: "attempt: a damaged newest record, for recover (traced)",
      setup: async (host) => {
        await Deno.mkdir(`${host.state}/attempts`, { recursive: true, mode: 0o700 });
        await plant(recordFile(host), json(goodRecord()).slice(0, 50));
      },
      argv: ["recover"],
      code: EXIT.failed,
      // Set aside, and the host brought to a known state as far as it can be (this
      // host has no bus, so phase "cancel" cannot run: that is said, and exit 1).
      stderr: /The newest attempt record was unusable and was set aside \(.*\.corrupt\);/,
      strace: true,
    },
    {
      name: "attempt: a symlinked record, for recover",
      setup: (host) => plantLink(recordFile(host), host.secret),
      argv: ["recover"],
      code: EXIT.ok,
      after: async (host) => {
        if ((await Deno.readTextFile(host.secret)).length === 0) throw new Error("secret changed");
      },
    },
    {
      name: "attempt: an open record with a device path leaving sysfs, for recover",
      setup: (host) =>
        plant(
          recordFile(host),
          json(goodRecord({
            status: "rolling-back",
            outcome: undefined,
            plan: PLAN,
            steps: [{
              name: "request-devices",
              status: "done",
              started: "2026-11-25T20:00:00.000Z",
              undo: {
                changes: [{ path: "../../../etc", to: true, reason: "selected" }],
                ownedBefore: [],
              },
            }],
          })),
        ),
      argv: ["recover"],
      code: EXIT.failed,
      stderr: /D-Bus|bus/,
      strace: true,
    },
    {
      name: "attempt: an open record, for finish (no kernel change)",
      setup: (host) =>
        plant(
          recordFile(host),
          json(goodRecord({ status: "preparing", outcome: undefined, plan: PLAN })),
        ),
      argv: ["finish"],
      code: EXIT.failed,
      stderr: /bus/,
    },
    {
      name: "attempt: an open record, for cancel",
      setup: (host) =>
        plant(
          recordFile(host),
          json(goodRecord({ status: "prepared", outcome: undefined, plan: PLAN })),
        ),
      argv: ["cancel"],
      code: EXIT.failed,
      stderr: /bus/,
    },
    {
      name: "attempt: an open record whose plan lacks its phases (it crashed the rollback)",
      setup: (host) =>
        plant(recordFile(host), json(goodRecord({ status: "preparing", outcome: undefined }))),
      argv: ["recover"],
      code: EXIT.failed,
      stderr: /cannot be used \(field "plan" has no "phases" list\); moved it to ".*\.corrupt"/,
    },
    {
      name: "requested devices: truncated",
      setup: (host) =>
        plant(`${host.state}/devices-requested.json`, '{"version":1,"devices":[{"pa'),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /devices-requested\.json\\" is unreadable: it is not JSON/,
    },
    {
      name: "requested devices: a future version",
      setup: (host) =>
        plant(`${host.state}/devices-requested.json`, '{"version":7,"devices":[]}\n'),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /its version is 7, this agent reads version 1/,
    },
    {
      name: "requested devices: a path with ..",
      setup: (host) =>
        plant(
          `${host.state}/devices-requested.json`,
          json({ version: 1, devices: [{ path: `${TAGGED}/../../../../etc`, id: "x" }] }),
        ),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /device entry 0 is not \{ path, id, unit\? \} with a clean device path/,
    },
    {
      name: "requested devices: an absolute path",
      setup: (host) =>
        plant(
          `${host.state}/devices-requested.json`,
          json({ version: 1, devices: [{ path: "/etc", id: "x" }] }),
        ),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /device entry 0/,
    },
    {
      name: "requested devices: a FIFO",
      setup: (host) => plantFifo(`${host.state}/devices-requested.json`),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /not a regular file/,
      strace: true,
    },
    {
      name: "requested devices: a symlink to a secret",
      setup: (host) => plantLink(`${host.state}/devices-requested.json`, host.secret),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /is a symlink/,
    },
    {
      name: "requested devices: binary",
      setup: (host) => plant(`${host.state}/devices-requested.json`, garbage(300, 9)),
      argv: ["devices", "--json"],
      code: EXIT.failed,
      quiet: true,
      stdout: /it is not JSON/,
    },
  ],
};

/**
 * The JSON Schema of every `--json` document the agent prints. Each document has
 * a `version` (attempt records: `schema`) that changes only when a field changes
 * meaning or disappears. Fields may be added within a version; the schema then
 * lists them too. The schemas allow no unlisted field, so the tests catch a field
 * added to a document but not to its schema; consumers should ignore fields they
 * do not know.
 *
 * @module
 */

import {
  array,
  attemptSummary,
  backendName,
  boolean,
  described,
  DRAFT,
  fleetState,
  handoverAbi,
  integer,
  type JsonSchema,
  luoState,
  map,
  nullable,
  nullableString,
  object,
  oneOfValues,
  schemaId,
  string,
} from "./_common.ts";
import { ATTEMPT_DEFS, plan } from "./attempt.ts";

function document(
  name: string,
  version: number,
  title: string,
  body: JsonSchema,
  defs: Record<string, JsonSchema> = {},
): JsonSchema {
  return {
    $schema: DRAFT,
    $id: schemaId(name, version),
    title,
    ...body,
    ...(Object.keys(defs).length ? { $defs: defs } : {}),
  };
}

const kernelSide = object({
  image: nullableString,
  release: nullableString,
  releaseSource: nullable(oneOfValues(["uname", "image header", "file name"])),
  version: described('"MAJOR.MINOR", or null when unknown.', nullableString),
  versionSource: nullable(oneOfValues(["config", "metadata"])),
  metadataFile: nullableString,
  problem: nullableString,
  note: nullableString,
  compatible: described(
    "Mainline kernels: the handover compatible strings; null elsewhere.",
    nullable(handoverAbi),
  ),
});

/** The session part of a mainline kernel (`kernel.sessions`). */
const statusSessions = object({
  device: string,
  cmdline: described(
    "Whether the running command line has kho=on liveupdate=on; null when unreadable.",
    nullable(object({ ok: boolean, message: string })),
  ),
  getNameIoctl: described("Whether GET_NAME exists (Linux 7.2+).", nullable(boolean)),
  devices: object({ preserved: { const: false }, reason: string }),
  outgoing: object({
    kho: nullableString,
    luo: nullableString,
    liveupdateNumber: nullable(integer),
    problem: nullableString,
  }),
  incoming: object({
    kho: nullableString,
    previousRelease: nullableString,
    kexecCount: nullable(integer),
    problem: nullableString,
  }),
  broker: object({
    socket: string,
    running: boolean,
    phase: nullableString,
    subscribers: array(object({ id: string, pid: integer, state: string })),
    incoming: array(object({ name: string, outcome: string })),
    problem: nullableString,
  }),
});

const status = document(
  "status",
  1,
  "liveupdate-agent status --json",
  object({
    version: { const: 1 },
    summary: object({
      state: oneOfValues(["idle", "updating", "failed", "unavailable"]),
      sentence: string,
      attempt: nullableString,
      since: nullableString,
    }),
    agent: object({ version: string }),
    config: object({ sources: array(string) }),
    kernel: object({
      available: boolean,
      choice: oneOfValues(["auto", "rfc-v1", "mainline"]),
      backend: nullable(backendName),
      location: nullableString,
      reason: nullableString,
      missing: array(string),
      features: nullable(object({
        stateMachine: boolean,
        devices: boolean,
        extraFiles: array(string),
      })),
      state: nullable(luoState),
      stateError: nullableString,
      sessions: described(
        "The session part (mainline /dev/liveupdate); null where the kernel has none.",
        nullable(statusSessions),
      ),
      probes: array(object({
        backend: backendName,
        location: string,
        present: boolean,
        usable: boolean,
        summary: string,
        problems: array(string),
        missing: array(string),
      })),
    }),
    handover: object({
      status: oneOfValues(["present", "absent", "unavailable", "invalid"]),
      file: string,
      version: nullableString,
      detail: nullableString,
    }),
    compat: object({
      running: kernelSide,
      target: kernelSide,
      verdict: object({
        outcome: oneOfValues(["compatible", "incompatible", "unknown", "invalid"]),
        allowed: boolean,
        override: boolean,
        sentence: string,
      }),
    }),
    attempts: object({
      dir: string,
      keep: integer,
      total: integer,
      recent: described("The newest 5, newest first.", array(attemptSummary)),
      open: described(
        "The attempt still open: the newest that is not refused, if it has not ended.",
        nullableString,
      ),
      unreadable: array(object({ path: string, problem: string })),
      problem: described("Why the records could not be listed.", nullableString),
    }),
    fleet: object({
      backend: oneOfValues(["none", "etcd", "fleetlock"]),
      group: string,
      state: nullable(fleetState),
    }),
  }),
);

const deviceView = object(
  {
    path: string,
    id: string,
    unit: string,
    owned: described("Whether the agent's record says the agent requested it.", boolean),
    flags: object({ requested: boolean, preserved: boolean, reclaimed: boolean }),
    error: described("Why the flags could not be read.", string),
    note: string,
  },
  { optional: ["id", "unit", "flags", "error", "note"] },
);
const deviceProblem = object({ id: string, path: string, message: string }, {
  optional: ["id", "path"],
});

const devices = document(
  "devices",
  1,
  "liveupdate-agent devices --json",
  object({
    version: { const: 1 },
    tag: string,
    match: map(string),
    index: string,
    record: string,
    kernel: {
      oneOf: [
        object({ available: { const: true }, state: luoState }),
        object({ available: { const: false }, reason: string }),
      ],
    },
    selected: array(deviceView),
    ancestors: array(deviceView),
    passedOver: array(deviceView),
    deselected: array(deviceView),
    conflicts: array(deviceView),
    pendingReclaim: array(deviceView),
    summary: object({
      selected: integer,
      requested: integer,
      toRequest: integer,
      toClear: integer,
      conflicts: integer,
      preserved: integer,
      pendingReclaim: integer,
    }),
    warnings: array(deviceProblem),
    errors: array(deviceProblem),
    complete: boolean,
  }),
);

const check = document(
  "check",
  1,
  "liveupdate-agent check --json",
  object({
    version: { const: 1 },
    ok: described("Whether prepare would go ahead.", boolean),
    problems: array(object({ check: string, message: string })),
    overrides: array(string),
    plan: { $ref: "#/$defs/plan" },
  }),
  { plan },
);

const history = document(
  "history",
  1,
  "liveupdate-agent history --json",
  object({
    version: { const: 1 },
    dir: string,
    keep: integer,
    attempts: described("Newest first.", array(attemptSummary)),
    unreadable: array(object({ path: string, problem: string })),
  }),
);

const attemptDocument = document(
  "attempt",
  1,
  "An attempt record (history ID --json, prepare --json, demo --json)",
  { $ref: "#/$defs/attempt" },
  ATTEMPT_DEFS,
);

const resolution = document(
  "resolution",
  1,
  "liveupdate-agent finish|recover|cancel --json",
  object({
    version: { const: 1 },
    action: described(
      'What was done: "nothing", "finished", "finished-with-errors", "rolled-back", ' +
        '"failed", "not-happened", "cancelled", "cancelled-kernel".',
      string,
    ),
    message: string,
    exit_code: integer,
    attempt: nullable({ $ref: "#/$defs/attempt" }),
  }),
  ATTEMPT_DEFS,
);

const wait = document(
  "wait",
  1,
  "liveupdate-agent wait --json",
  object({
    version: { const: 1 },
    for: oneOfValues(["finished", "normal"]),
    reached: described("Whether the condition was reached (false: timed out).", boolean),
    state: nullable(luoState),
    attempt: nullable(attemptSummary),
    exit_code: integer,
    message: string,
    waited_ms: integer,
  }),
);

const holder = object(
  {
    id: string,
    group: string,
    hostname: string,
    state: string,
    stage: string,
    reason: string,
    acquired_at: string,
    updated_at: string,
    lease_bound: boolean,
    slots: integer,
  },
  { optional: ["hostname", "stage", "reason", "acquired_at", "updated_at", "slots"] },
);
const halt = object(
  { id: string, group: string, hostname: string, reason: string, at: string },
  { optional: ["hostname", "reason", "at"] },
);

const fleetStatus = document("fleet-status", 1, "liveupdate-agent fleet status --json", {
  oneOf: [
    object({ version: { const: 1 }, backend: { const: "none" } }),
    object({
      version: { const: 1 },
      backend: oneOfValues(["etcd", "fleetlock"]),
      description: string,
      host: object({ id: string, group: string, slots: integer }),
      window: object({
        description: nullableString,
        open: boolean,
        opens_at: nullableString,
        closes_at: nullableString,
      }),
      local: nullable(fleetState),
      fleet: nullable(object({
        holders: array(holder),
        halts: array(halt),
        revision: integer,
      }, { optional: ["revision"] })),
      error: nullableString,
    }),
  ],
});

const fleetRelease = document(
  "fleet-release",
  1,
  "liveupdate-agent fleet release --json",
  object({
    version: { const: 1 },
    released: array(holder),
    halts: array(halt),
  }),
);

/** One document's schema and where it is printed. */
export interface DocumentSchema {
  name: string;
  version: number;
  /** The commands that print it. */
  commands: readonly string[];
  schema: JsonSchema;
}

/** Every `--json` document's schema, but `config --json`'s (generated from the config schema). */
export const DOCUMENT_SCHEMAS: readonly DocumentSchema[] = [
  { name: "status", version: 1, commands: ["status --json"], schema: status },
  { name: "devices", version: 1, commands: ["devices --json"], schema: devices },
  { name: "check", version: 1, commands: ["check --json"], schema: check },
  { name: "history", version: 1, commands: ["history --json"], schema: history },
  {
    name: "attempt",
    version: 1,
    commands: ["history ID --json", "prepare --json", "demo --json"],
    schema: attemptDocument,
  },
  {
    name: "resolution",
    version: 1,
    commands: ["finish --json", "recover --json", "cancel --json"],
    schema: resolution,
  },
  { name: "wait", version: 1, commands: ["wait --json"], schema: wait },
  { name: "fleet-status", version: 1, commands: ["fleet status --json"], schema: fleetStatus },
  { name: "fleet-release", version: 1, commands: ["fleet release --json"], schema: fleetRelease },
];

/**
 * Building blocks of the `--json` documents' JSON Schemas (draft 2020-12, the
 * subset tests/tools/json_schema.ts checks): every object lists its properties and
 * allows no others, so an undocumented field fails the tests.
 *
 * @module
 */

import { FLEET_PHASES } from "../../fleet/mod.ts";

/** A JSON Schema, as a plain object. */
export type JsonSchema = { [keyword: string]: unknown };

/** The `$schema` every document's schema declares. */
export const DRAFT = "https://json-schema.org/draft/2020-12/schema";

/** The `$id` of a document's schema: `urn:liveupdate-agent:schema:NAME:VERSION`. */
export function schemaId(name: string, version: number): string {
  return `urn:liveupdate-agent:schema:${name}:${version}`;
}

export const string: JsonSchema = { type: "string" };
export const boolean: JsonSchema = { type: "boolean" };
export const integer: JsonSchema = { type: "integer" };
export const number: JsonSchema = { type: "number" };

/** `schema` or null. */
export function nullable(schema: JsonSchema): JsonSchema {
  if (typeof schema.type === "string") return { ...schema, type: [schema.type, "null"] };
  return { anyOf: [schema, { type: "null" }] };
}

/** A string or null. */
export const nullableString: JsonSchema = nullable(string);

/** A described copy of `schema`. */
export function described(description: string, schema: JsonSchema): JsonSchema {
  return { description, ...schema };
}

/** A list of `items`. */
export function array(items: JsonSchema): JsonSchema {
  return { type: "array", items };
}

/** One of `values`. */
export function oneOfValues(values: readonly (string | number)[]): JsonSchema {
  return { enum: [...values] };
}

/**
 * An object with exactly these properties; all required except `optional`.
 * `open` allows further properties of any value (only where a layer may add its own).
 */
export function object(
  properties: Record<string, JsonSchema>,
  options: { optional?: readonly string[]; open?: boolean; description?: string } = {},
): JsonSchema {
  const optional = new Set(options.optional ?? []);
  return {
    ...(options.description ? { description: options.description } : {}),
    type: "object",
    properties,
    required: Object.keys(properties).filter((key) => !optional.has(key)),
    additionalProperties: options.open === true,
  };
}

/** A map from any string to `values`. */
export function map(values: JsonSchema): JsonSchema {
  return { type: "object", additionalProperties: values };
}

/** Handover compatible strings of a mainline kernel (agent/compat/compatible.ts `HandoverAbi`). */
export const handoverAbi: JsonSchema = object({
  kho: nullableString,
  luo: nullableString,
  fileHandlers: array(string),
});

/** An ISO 8601 time as the agent writes it (`Date.toISOString()`). */
export const isoTime: JsonSchema = {
  type: "string",
  pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$",
};

/** An attempt id ("20261125T200000Z-3fa9c1"). */
export const attemptId: JsonSchema = { type: "string", pattern: "^[A-Za-z0-9._-]{1,100}$" };

/** Every status of an attempt record. */
export const ATTEMPT_STATUSES = [
  "preparing",
  "prepared",
  "kexec-issued",
  "finishing",
  "rolling-back",
  "succeeded",
  "failed",
  "rolled-back",
  "refused",
  "cancelled",
] as const;

/** One attempt in a history (agent/cli/attempts_view.ts `AttemptSummary`). */
export const attemptSummary: JsonSchema = object({
  id: attemptId,
  status: oneOfValues(ATTEMPT_STATUSES),
  ended: described("Whether nothing more happens to it (a terminal status).", boolean),
  started: isoTime,
  ended_at: nullable(isoTime),
  running_release: nullableString,
  target_release: nullableString,
  duration_ms: described("From start to end (or to its last write while open).", nullable(integer)),
  exit_code: described("The exit code of its outcome; null while open.", nullable(integer)),
  message: described("The outcome's message; null while open.", nullableString),
  failed_step: described("The first step that failed, if any.", nullableString),
});

/** The fleet layer's state file (agent/fleet/state_file.ts). */
export const fleetState: JsonSchema = object(
  {
    version: { const: 1 },
    pid: integer,
    host_id: string,
    group: string,
    backend: string,
    phase: oneOfValues(FLEET_PHASES),
    since: string,
    updated_at: string,
    wait_started_at: string,
    attempts: integer,
    next_attempt_at: string,
    window: object(
      { description: string, open: boolean, opens_at: string, closes_at: string },
      { optional: ["opens_at", "closes_at"] },
    ),
    override: object({ reason: string, at: string }),
    blocked_by: array(string),
    last_decision: object({ kind: string, message: string, time: string }),
    slot: object(
      {
        backend: oneOfValues(["etcd", "fleetlock"]),
        id: string,
        group: string,
        acquired_at: string,
        key: string,
        create_revision: integer,
        url: string,
      },
      { optional: ["key", "create_revision", "url"] },
    ),
  },
  {
    optional: [
      "wait_started_at",
      "next_attempt_at",
      "override",
      "blocked_by",
      "last_decision",
      "slot",
    ],
  },
);

/** A kernel backend's name. */
export const backendName: JsonSchema = oneOfValues(["rfc-v1", "mainline"]);

/** A state of the kernel's state machine. */
export const luoState: JsonSchema = oneOfValues(["normal", "prepared", "updated"]);

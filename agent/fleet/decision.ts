/**
 * Fleet decisions: every choice the fleet layer makes (wait for the window, take
 * a slot, keep it, release it, …) is logged with structured fields AND kept as
 * data, which the update flow writes into the attempt record.
 *
 * @module
 */

import type { Clock } from "../host/mod.ts";
import type { Level, Logger } from "../log/mod.ts";

/** What was decided. */
export type FleetDecisionKind =
  | "window-open"
  | "window-closed"
  | "window-override"
  | "slot-busy"
  | "fleet-halted"
  | "backend-error"
  | "wait-timeout"
  | "slot-acquired"
  | "slot-persisted"
  | "slot-lost"
  | "slot-kept"
  | "slot-abandoned"
  | "slot-resumed"
  | "slot-missing"
  | "health-waiting"
  | "health-passed"
  | "health-failed"
  | "slot-released";

/** A value of a decision's fields. */
export type DecisionValue = string | number | boolean | null;

/** One decision, as the attempt record keeps it. */
export interface FleetDecision {
  /** When it was made (ISO 8601, UTC). */
  time: string;
  kind: FleetDecisionKind;
  /** One sentence for the operator. */
  message: string;
  backend: string;
  group: string;
  host_id: string;
  /** Details: holders, revision, next try, window times, reason, … */
  fields: Readonly<Record<string, DecisionValue>>;
  /** How often the same decision was made again in a row (retries), if at all. */
  repeats?: number;
  /** When it was last made again. */
  last_time?: string;
}

/** Receives each decision as it is made, with the list so far (for the attempt record). */
export type DecisionSink = (
  decision: FleetDecision,
  all: readonly FleetDecision[],
) => void | Promise<void>;

const LEVELS: Readonly<Record<FleetDecisionKind, Level>> = {
  "window-open": "info",
  "window-closed": "info",
  "window-override": "notice",
  "slot-busy": "info",
  "fleet-halted": "warning",
  "backend-error": "warning",
  "wait-timeout": "error",
  "slot-acquired": "notice",
  "slot-persisted": "notice",
  "slot-lost": "error",
  "slot-kept": "warning",
  "slot-abandoned": "notice",
  "slot-resumed": "notice",
  "slot-missing": "warning",
  "health-waiting": "info",
  "health-passed": "notice",
  "health-failed": "error",
  "slot-released": "notice",
};

/** The identity every decision of one host carries. */
export interface DecisionContext {
  backend: string;
  group: string;
  host_id: string;
}

/** Decisions of waiting: repeated in a row, they are one entry of the record. */
const WAITING_KINDS: ReadonlySet<FleetDecisionKind> = new Set([
  "window-closed",
  "slot-busy",
  "fleet-halted",
  "backend-error",
  "health-waiting",
]);

/**
 * Makes, logs and keeps decisions. A waiting decision of the same kind as the one
 * before (a retry) updates that entry (latest message and fields, `repeats`,
 * `last_time`) instead of adding one, and is logged at debug level when its
 * message did not change: a week-long wait neither floods the journal nor the
 * attempt record.
 */
export class DecisionLog {
  readonly #decisions: FleetDecision[] = [];
  readonly #log: Logger;
  readonly #clock: Pick<Clock, "now">;
  readonly #context: DecisionContext;
  readonly #sink: DecisionSink | undefined;

  constructor(
    log: Logger,
    clock: Pick<Clock, "now">,
    context: DecisionContext,
    sink?: DecisionSink,
  ) {
    this.#log = log;
    this.#clock = clock;
    this.#context = context;
    this.#sink = sink;
  }

  /** Every decision so far, oldest first. */
  get decisions(): readonly FleetDecision[] {
    return this.#decisions;
  }

  /** The latest decision, if any. */
  get last(): FleetDecision | undefined {
    return this.#decisions.at(-1);
  }

  /** Records, logs and hands on one decision; returns it. */
  async decide(
    kind: FleetDecisionKind,
    message: string,
    fields: Readonly<Record<string, DecisionValue>> = {},
  ): Promise<FleetDecision> {
    const time = this.#clock.now().toISOString();
    const logFields = {
      fleet: kind,
      host_id: this.#context.host_id,
      group: this.#context.group,
      backend: this.#context.backend,
      ...fields,
    };
    const last = this.last;
    let decision: FleetDecision;
    if (last && last.kind === kind && (last.message === message || WAITING_KINDS.has(kind))) {
      const same = last.message === message;
      last.repeats = (last.repeats ?? 0) + 1;
      last.last_time = time;
      last.message = message;
      last.fields = fields;
      decision = last;
      const level = same ? "debug" : LEVELS[kind];
      this.#log[level](message, { ...logFields, repeats: last.repeats });
    } else {
      decision = { time, kind, message, ...this.#context, fields };
      this.#decisions.push(decision);
      this.#log[LEVELS[kind]](message, logFields);
    }
    await this.#sink?.(decision, this.#decisions);
    return decision;
  }
}

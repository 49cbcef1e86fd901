/**
 * What the fleet layer is doing right now, for `status`, `fleet status` and the
 * metrics writer: a small JSON file in the runtime directory
 * (`<paths.runtime_dir>/fleet.json`), replaced atomically on every change by the
 * process that waits for or holds a slot.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { SlotRecord } from "./backend.ts";

/** Version of the state file's format. */
export const FLEET_STATE_VERSION = 1;

/** The name of the state file in the runtime directory. */
export const FLEET_STATE_FILE = "fleet.json";

/** What the fleet layer is doing. */
export type FleetPhase =
  | "waiting-window"
  | "waiting-slot"
  | "holding"
  | "persistent"
  | "waiting-health"
  | "released"
  | "kept"
  | "lost"
  | "abandoned"
  | "timed-out"
  | "failed"
  /** The wait was stopped (the agent was told to stop). */
  | "stopped";

/** Every phase, for metrics. */
export const FLEET_PHASES: readonly FleetPhase[] = [
  "waiting-window",
  "waiting-slot",
  "holding",
  "persistent",
  "waiting-health",
  "released",
  "kept",
  "lost",
  "abandoned",
  "timed-out",
  "failed",
  "stopped",
];

/** The state file's content. */
export interface FleetRuntimeState {
  version: typeof FLEET_STATE_VERSION;
  /** The process that wrote it. */
  pid: number;
  host_id: string;
  group: string;
  backend: string;
  phase: FleetPhase;
  /** When the phase began. */
  since: string;
  updated_at: string;
  /** When the current wait began (for wait-time metrics). */
  wait_started_at?: string;
  /** Tries for a slot in the current wait. */
  attempts: number;
  next_attempt_at?: string;
  window: { description: string; open: boolean; opens_at?: string; closes_at?: string };
  /** The recorded `--now` override, if the wait skipped the window. */
  override?: { reason: string; at: string };
  /** Who holds the slots or halts the rollout, when waiting. */
  blocked_by?: string[];
  last_decision?: { kind: string; message: string; time: string };
  slot?: SlotRecord;
}

/** Writes the state file; failures are logged, never fatal (it is only a report). */
export class FleetStateFile {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #log: Logger;

  constructor(fs: FileSystem, runtimeDir: string, log: Logger) {
    this.#fs = fs;
    this.#dir = runtimeDir;
    this.#log = log;
  }

  /** The file's path. */
  get path(): string {
    return `${this.#dir}/${FLEET_STATE_FILE}`;
  }

  /** Replaces the file with `state` (temporary file, then rename). */
  async write(state: FleetRuntimeState): Promise<void> {
    const temp = `${this.path}.${state.pid}.tmp`;
    try {
      await this.#fs.mkdir(this.#dir, { recursive: true });
      await this.#fs.writeTextFile(temp, JSON.stringify(state, null, 2) + "\n");
      await this.#fs.rename(temp, this.path);
    } catch (error) {
      this.#log.warning(
        `Could not write the fleet state file "${this.path}": ${(error as Error).message}. ` +
          "status and metrics will not show the fleet wait.",
      );
      await this.#fs.remove(temp).catch(() => {});
    }
  }
}

/**
 * Reads the state file in `runtimeDir`; undefined when there is none. Throws on
 * a file that is not a fleet state (the message names it). Needs read permission
 * on the runtime directory.
 */
export async function readFleetState(
  fs: FileSystem,
  runtimeDir: string,
): Promise<FleetRuntimeState | undefined> {
  const path = `${runtimeDir}/${FLEET_STATE_FILE}`;
  let text: string;
  try {
    text = await fs.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot read the fleet state file "${path}": ${(error as Error).message}`);
  }
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch {
    throw new Error(`The fleet state file "${path}" is not JSON. Remove it; it is rewritten.`);
  }
  if (
    typeof state !== "object" || state === null ||
    (state as { version?: unknown }).version !== FLEET_STATE_VERSION ||
    typeof (state as { phase?: unknown }).phase !== "string"
  ) {
    throw new Error(
      `The fleet state file "${path}" is not a version ${FLEET_STATE_VERSION} fleet state. ` +
        "Remove it; it is rewritten.",
    );
  }
  return state as FleetRuntimeState;
}

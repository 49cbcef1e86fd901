/**
 * The fleet layer's runtime state, kept by the coordinator and its slots and
 * written to the state file on every change. Private to this folder.
 *
 * @module
 */

import type { Clock } from "../host/mod.ts";
import type { FleetRuntimeState, FleetStateFile } from "./state_file.ts";

/** Tracks the runtime state and writes the state file on every change. */
export class StateTracker {
  #state: FleetRuntimeState;
  readonly #file: FleetStateFile | undefined;
  readonly #clock: Pick<Clock, "now">;

  constructor(
    base: Omit<FleetRuntimeState, "since" | "updated_at">,
    file: FleetStateFile | undefined,
    clock: Pick<Clock, "now">,
  ) {
    const now = clock.now().toISOString();
    this.#state = { ...base, since: now, updated_at: now };
    this.#file = file;
    this.#clock = clock;
  }

  get state(): FleetRuntimeState {
    return this.#state;
  }

  async set(
    patch: Partial<FleetRuntimeState>,
    remove: (keyof FleetRuntimeState)[] = [],
  ): Promise<void> {
    const now = this.#clock.now().toISOString();
    const next: FleetRuntimeState = { ...this.#state, ...patch, updated_at: now };
    if (patch.phase !== undefined && patch.phase !== this.#state.phase) next.since = now;
    for (const key of remove) delete next[key];
    this.#state = next;
    await this.#file?.write(next);
  }
}

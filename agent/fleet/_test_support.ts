/**
 * Test support of the fleet layer's unit tests: a virtual clock whose sleeps
 * pass at once (and are recorded), and an in-memory backend answering from a
 * script. Private to this folder.
 *
 * @module
 */

import type { Clock } from "../host/mod.ts";
import type {
  BackendHold,
  FleetBackend,
  FleetListing,
  OperatorReleaseResult,
  PersistChange,
  SlotRequest,
  TryAcquireResult,
} from "./backend.ts";
import { FleetBackendError } from "./fleet_error.ts";

/** A clock that starts at `start` and moves only when something sleeps. */
export class VirtualClock implements Clock {
  #now: number;
  #monotonic = 1000;
  /** Every sleep, in order. */
  readonly sleeps: number[] = [];

  constructor(start: Date) {
    this.#now = start.getTime();
  }

  now(): Date {
    return new Date(this.#now);
  }

  monotonic(): number {
    return this.#monotonic;
  }

  /** Moves time forward. */
  advance(ms: number): void {
    this.#now += ms;
    this.#monotonic += ms;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.sleeps.push(ms);
    this.advance(ms);
    return Promise.resolve();
  }
}

/** One scripted answer of {@link ScriptedBackend.tryAcquire}. */
export type Answer = "grant" | "full" | "halted" | "kept" | "error";

/** A held slot of the scripted backend. */
export class ScriptedHold implements BackendHold {
  leaseBound = true;
  readonly #lost = new AbortController();
  readonly changes: PersistChange[] = [];
  released = 0;
  releaseErrors = 0;
  readonly record;

  constructor(request: SlotRequest) {
    this.record = {
      backend: "etcd" as const,
      id: request.id,
      group: request.group,
      acquired_at: "2026-11-27T22:00:00.000Z",
      key: `/t/${request.group}/${request.id}`,
    };
  }

  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  /** Loses the slot (as an expired lease would). */
  lose(error: Error): void {
    this.#lost.abort(error);
  }

  persist(change: PersistChange): Promise<Record<string, string>> {
    this.#lost.signal.throwIfAborted();
    this.changes.push(change);
    this.leaseBound = false;
    return Promise.resolve({ stage: change.stage ?? "" });
  }

  release(): Promise<{ outcome: "released"; fields: Record<string, string> }> {
    if (this.releaseErrors > 0) {
      this.releaseErrors--;
      return Promise.reject(new FleetBackendError("etcd unreachable", { kind: "unreachable" }));
    }
    this.released++;
    return Promise.resolve({ outcome: "released", fields: {} });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A backend answering tries from a script (the last answer repeats). */
export class ScriptedBackend implements FleetBackend {
  readonly name = "etcd";
  readonly description = "scripted";
  readonly requests: SlotRequest[] = [];
  readonly halts: string[] = [];
  hold: ScriptedHold | undefined;

  constructor(readonly script: Answer[]) {}

  tryAcquire(request: SlotRequest): Promise<TryAcquireResult> {
    this.requests.push(request);
    const answer = this.script.length > 1 ? this.script.shift()! : this.script[0]!;
    switch (answer) {
      case "grant":
        this.hold = new ScriptedHold(request);
        return Promise.resolve({ granted: true, hold: this.hold, fields: { revision: 7 } });
      case "error":
        return Promise.reject(
          new FleetBackendError("Cannot reach http://127.0.0.1:1: connection refused.", {
            endpoint: "http://127.0.0.1:1",
            kind: "unreachable",
          }),
        );
      default:
        return Promise.resolve({
          granted: false,
          reason: answer,
          message: answer === "full"
            ? "All 1 slot(s) are held (by host-z)."
            : `Refused: ${answer}.`,
          holders: ["host-z"],
          fields: { revision: 3 },
        });
    }
  }

  resume(): Promise<BackendHold | undefined> {
    return Promise.resolve(this.hold);
  }

  halt(request: SlotRequest, reason: string): Promise<boolean> {
    this.halts.push(`${request.id}: ${reason}`);
    return Promise.resolve(true);
  }

  list(): Promise<FleetListing> {
    return Promise.resolve({ holders: [], halts: [] });
  }

  operatorRelease(): Promise<OperatorReleaseResult> {
    return Promise.resolve({ released: [], halts: [] });
  }

  close(): void {}
}

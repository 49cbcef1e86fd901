/**
 * An in-memory stand-in for systemd's manager on a bus, for unit tests of edge cases
 * a real manager cannot be made to produce on demand (a result arriving before the
 * reply that names its job, a connection dropping at an exact moment). The
 * integration tier runs the same code against a real manager.
 *
 * @module
 */

import type { Bus, BusCall, BusConnector, BusSignal } from "./bus.ts";
import { BusCallError, BusDisconnectedError } from "./systemd_error.ts";

/** How a fake unit behaves. */
export interface FakeUnit {
  loadState?: string;
  activeState?: string;
  /** The result its jobs end with (default "done"). */
  result?: string;
  /** Jobs never end (until cancelled). */
  hang?: boolean;
  /** Send JobRemoved before the EnqueueUnitJob reply. */
  resultBeforeReply?: boolean;
  /** Units whose jobs the transaction adds ([unit, type]). */
  adds?: [string, string][];
  /** Refuse jobs with this D-Bus error name. */
  refuse?: string;
  /** The service's Result property. */
  serviceResult?: string;
}

/** A fake bus with a fake manager behind it. */
export class FakeSystemd implements Bus {
  readonly units: Map<string, FakeUnit>;
  /** Every call, in the order the client wrote them. */
  readonly calls: BusCall[] = [];
  /** How many EnqueueUnitJob calls had been written when the first reply went out. */
  writtenAtFirstReply = -1;
  readonly disconnected: Promise<BusDisconnectedError>;
  #listeners = new Set<(signal: BusSignal) => void>();
  #nextJob = 100;
  #jobs = new Map<string, { unit: string; type: string }>();
  #gone: BusDisconnectedError | undefined;
  #markGone!: (error: BusDisconnectedError) => void;
  #pending = new Set<(error: Error) => void>();
  #timers = new Set<ReturnType<typeof setTimeout>>();

  #later(fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  constructor(units: Record<string, FakeUnit>) {
    this.units = new Map(Object.entries(units));
    this.disconnected = new Promise((resolve) => (this.#markGone = resolve));
  }

  get connected(): boolean {
    return !this.#gone;
  }

  /** A connector that hands out this bus. */
  connector(): BusConnector {
    return { connect: () => Promise.resolve(this) };
  }

  /** Drops the connection: pending calls reject, `disconnected` resolves. */
  drop(reason = "the bus closed the connection"): void {
    if (this.#gone) return;
    this.#gone = new BusDisconnectedError(reason);
    for (const reject of this.#pending) reject(this.#gone);
    this.#pending.clear();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#markGone(this.#gone);
  }

  close(): Promise<void> {
    this.drop("closed by the agent");
    return Promise.resolve();
  }

  onSignal(listener: (signal: BusSignal) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emitRemoved(path: string, result: string): void {
    const job = this.#jobs.get(path);
    if (!job || this.#gone) return;
    this.#jobs.delete(path);
    const unit = this.units.get(job.unit);
    if (unit && result === "done") {
      unit.activeState = job.type === "stop" ? "inactive" : "active";
    }
    const body = [Number(path.split("/").pop()), path, job.unit, result];
    for (const listener of this.#listeners) {
      listener({
        sender: ":1.1",
        path: "/org/freedesktop/systemd1",
        interface: "org.freedesktop.systemd1.Manager",
        member: "JobRemoved",
        body,
      });
    }
  }

  #job(unit: string, type: string): string {
    const path = `/org/freedesktop/systemd1/job/${this.#nextJob++}`;
    this.#jobs.set(path, { unit, type });
    return path;
  }

  #finishLater(path: string, unit: FakeUnit): void {
    if (unit.hang) return;
    this.#later(() => this.#emitRemoved(path, unit.result ?? "done"), 1);
  }

  call(call: BusCall): Promise<readonly unknown[]> {
    if (this.#gone) return Promise.reject(this.#gone);
    this.calls.push(call);
    return new Promise((resolve, reject) => {
      this.#pending.add(reject);
      const reply = (body: readonly unknown[]) => {
        this.#pending.delete(reject);
        if (!this.#gone) resolve(body);
      };
      const fail = (name: string, text: string) => {
        this.#pending.delete(reject);
        if (!this.#gone) reject(new BusCallError(call.member, name, text));
      };
      // Replies go out on a later tick, as over a socket.
      this.#later(() => {
        if (this.#gone) return;
        const body = call.body ?? [];
        switch (call.member) {
          case "AddMatch":
          case "Subscribe":
            return reply([]);
          case "ListUnitsByNames":
            return reply([
              (body[0] as string[]).map((name) => {
                const unit = this.units.get(name);
                return [
                  name,
                  "",
                  unit?.loadState ?? (unit ? "loaded" : "not-found"),
                  unit?.activeState ?? "inactive",
                  "dead",
                  "",
                  `/unit/${name}`,
                  0,
                  "",
                  "/",
                ];
              }),
            ]);
          case "Get":
            return reply([{
              signature: "s",
              value: this.units.get(String(call.path).slice(6))?.serviceResult ?? "success",
            }]);
          case "Cancel": {
            const path = call.path;
            if (!this.#jobs.has(path)) return fail("org.freedesktop.systemd1.NoSuchJob", "gone");
            reply([]);
            return this.#emitRemoved(path, "canceled");
          }
          case "EnqueueUnitJob": {
            if (this.writtenAtFirstReply < 0) {
              this.writtenAtFirstReply = this.calls.filter((c) => c.member === "EnqueueUnitJob")
                .length;
            }
            const [name, type] = body as [string, string];
            const unit = this.units.get(name);
            if (!unit) {
              return fail("org.freedesktop.systemd1.NoSuchUnit", `Unit ${name} not found.`);
            }
            if (unit.refuse) return fail(unit.refuse, "refused");
            const path = this.#job(name, type);
            const affected = (unit.adds ?? []).map(([other, otherType]) => {
              const otherPath = this.#job(other, otherType);
              this.#finishLater(otherPath, this.units.get(other) ?? {});
              return [0, otherPath, other, `/unit/${other}`, otherType];
            });
            if (unit.resultBeforeReply) this.#emitRemoved(path, unit.result ?? "done");
            else this.#finishLater(path, unit);
            return reply([0, path, name, `/unit/${name}`, type, affected]);
          }
          default:
            return fail("org.freedesktop.DBus.Error.UnknownMethod", call.member);
        }
      }, 0);
    });
  }
}

/**
 * Keeps an etcd lease alive while an update can still be undone, and says when
 * it is lost. The keeper renews the lease every third of its TTL and counts the
 * lease as lost when it has not been renewed for a whole TTL measured from the
 * moment the last successful renewal was SENT. etcd measures from the moment it
 * RECEIVED it, later, so the agent always learns of the loss before etcd frees
 * the slot for another host.
 *
 * @module
 */

import type { Clock } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { EtcdClient } from "./etcd_client.ts";
import { FleetSlotLostError } from "./fleet_error.ts";

/** Options of {@link LeaseKeeper}. */
export interface LeaseKeeperOptions {
  client: EtcdClient;
  leaseId: string;
  /** The TTL etcd granted, in seconds. */
  ttlSeconds: number;
  /** `clock.monotonic()` when the grant request was sent. */
  grantSentAt: number;
  clock: Clock;
  log: Logger;
  /** Names the slot in the loss message. */
  what: string;
}

/** A running keep-alive loop of one lease. */
export class LeaseKeeper {
  readonly #options: LeaseKeeperOptions;
  readonly #lost = new AbortController();
  readonly #stop = new AbortController();
  #deadline: number;
  #loop: Promise<void> | undefined;

  constructor(options: LeaseKeeperOptions) {
    this.#options = options;
    this.#deadline = options.grantSentAt + options.ttlSeconds * 1000;
  }

  /** Aborted, with a FleetSlotLostError as reason, when the lease is lost. */
  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  /** The monotonic time by which the lease must be renewed. */
  get deadline(): number {
    return this.#deadline;
  }

  /** Starts renewing. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops renewing (the lease itself is left to the caller) and waits for the loop. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  /** Counts the lease as lost now (the slot is gone), with `why`. */
  markLost(why: string): void {
    if (this.#lost.signal.aborted) return;
    this.#stop.abort();
    const { what, leaseId } = this.#options;
    this.#options.log.error(`Lost ${what}: ${why}.`, { lease: leaseId });
    this.#lost.abort(
      new FleetSlotLostError(
        `Lost ${what}: ${why}. Another host may take it now, so this update must not go on; ` +
          "roll back.",
      ),
    );
  }

  async #sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    try {
      await this.#options.clock.sleep(Math.max(0, ms), signal);
      return true;
    } catch {
      return false;
    }
  }

  async #run(): Promise<void> {
    const { client, leaseId, clock, log } = this.#options;
    const ttlMs = this.#options.ttlSeconds * 1000;
    const interval = Math.max(100, Math.floor(ttlMs / 3));
    const retry = Math.max(100, Math.min(1000, Math.floor(ttlMs / 10)));
    let wait = interval;
    while (!this.#stop.signal.aborted && !this.#lost.signal.aborted) {
      const untilDeadline = this.#deadline - clock.monotonic();
      if (!await this.#sleep(Math.min(wait, untilDeadline), this.#stop.signal)) return;
      const sent = clock.monotonic();
      if (sent >= this.#deadline) {
        this.markLost(
          `lease ${leaseId} was not renewed within its ${this.#options.ttlSeconds}s TTL`,
        );
        return;
      }
      // The renewal may not outlive the lease: abort it at the deadline.
      const guard = new AbortController();
      const onStop = () => guard.abort();
      this.#stop.signal.addEventListener("abort", onStop, { once: true });
      const timer = new AbortController();
      const watchdog = this.#sleep(this.#deadline - sent, timer.signal).then((expired) => {
        if (expired) guard.abort();
      });
      try {
        const ttl = await client.keepAlive(leaseId, guard.signal);
        if (ttl <= 0) {
          this.markLost(`etcd says lease ${leaseId} has expired`);
          return;
        }
        this.#deadline = sent + ttl * 1000;
        wait = interval;
      } catch (error) {
        if (this.#stop.signal.aborted) return;
        const message = error instanceof Error ? error.message : String(error);
        log.warning(`Could not renew the slot's lease: ${message}`, { lease: leaseId });
        wait = retry;
      } finally {
        timer.abort();
        await watchdog;
        this.#stop.signal.removeEventListener("abort", onStop);
      }
    }
  }
}

/**
 * Slots in etcd v3.
 *
 * Keys, under the configured prefix (default "/liveupdate/fleet/"):
 *
 *   groups/<group>/holders/<host-id>   one per slot held; JSON (host, stage, state, times)
 *   halt/<group>/<host-id>             one per failed update that halts the rollout
 *
 * Taking a slot is one transaction: read the group's holders and the halt marks
 * at revision R; if fewer than `slots` hold one and nothing halts, put our holder
 * key, on condition that no key in the holder range was created after R (so no
 * other host took a slot meanwhile: the count cannot pass `slots`), that our key
 * does not exist, and that still no halt mark exists. The key is attached to a lease
 * the agent keeps alive: a host that dies while its update can still be undone
 * frees its slot when the lease expires.
 *
 * Before the first step that cannot be undone without a reboot (the flow calls
 * `persist` before writing the kernel's prepare), and when an update fails, the
 * key is rewritten WITHOUT the lease, in a transaction conditioned on it still
 * being ours on our lease. From then on the slot outlives the agent, the kexec
 * and the host: only `finish` (after a healthy update) or an operator frees it.
 * A failed update also writes a halt mark; depending on `fleet.etcd.halt`, marks
 * stop every group ("fleet"), the failed host's group ("group"), or nothing
 * beyond the kept slot ("slot", the FleetLock convention).
 *
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import type { Clock } from "../host/mod.ts";
import type { Logger } from "../log/mod.ts";
import type {
  BackendHold,
  FleetBackend,
  FleetListing,
  HaltListing,
  HolderListing,
  OperatorReleaseResult,
  PersistChange,
  SlotRecord,
  SlotRequest,
  TryAcquireResult,
} from "./backend.ts";
import type { DecisionValue } from "./decision.ts";
import { type EtcdClient, type EtcdCompare, type EtcdKeyValue, prefixEnd } from "./etcd_client.ts";
import { FleetBackendError, FleetError, FleetSlotLostError } from "./fleet_error.ts";
import { LeaseKeeper } from "./lease_keeper.ts";

/** What a failed update halts. */
export type HaltScope = "fleet" | "group" | "slot";

/** Options of {@link EtcdBackend}. */
export interface EtcdBackendOptions {
  client: EtcdClient;
  prefix: string;
  leaseTtlSeconds: number;
  halt: HaltScope;
  clock: Clock;
  log: Logger;
}

/** A holder key's value. */
interface HolderValue {
  v: 1;
  id: string;
  group: string;
  hostname?: string;
  agent?: string;
  attempt?: string;
  state: "updating" | "failed";
  stage: string;
  reason?: string;
  slots?: number;
  acquired_at: string;
  updated_at: string;
}

/** A halt mark's value. */
interface HaltValue {
  v: 1;
  id: string;
  group: string;
  hostname?: string;
  reason: string;
  at: string;
}

function parseJson<T>(text: string): Partial<T> {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : {};
  } catch {
    return {};
  }
}

/** "host-7 (on node-7.example)", or the id alone when the host name says nothing more. */
function describeHost(id: string, hostname: string | undefined): string {
  return hostname && hostname !== id ? `${id} (on ${hostname})` : id;
}

/** Keeps etcd slots. */
export class EtcdBackend implements FleetBackend {
  readonly name = "etcd";
  readonly #options: EtcdBackendOptions;

  constructor(options: EtcdBackendOptions) {
    this.#options = options;
  }

  get description(): string {
    return `etcd ${this.#options.client.endpoints.join(",")} prefix ${this.#options.prefix}`;
  }

  /** The key prefix of group `group`'s holders. */
  holdersPrefix(group: string): string {
    return `${this.#options.prefix}groups/${group}/holders/`;
  }

  /** The holder key of host `id` in `group`. */
  holderKey(group: string, id: string): string {
    return `${this.holdersPrefix(group)}${id}`;
  }

  /** The prefix of the halt marks that stop `group` under the configured scope. */
  haltScopePrefix(group: string): string {
    return this.#options.halt === "fleet"
      ? `${this.#options.prefix}halt/`
      : `${this.#options.prefix}halt/${group}/`;
  }

  /** The halt mark of host `id` in `group`. */
  haltKey(group: string, id: string): string {
    return `${this.#options.prefix}halt/${group}/${id}`;
  }

  close(): void {
    this.#options.client.close();
  }

  #now(): string {
    return this.#options.clock.now().toISOString();
  }

  async tryAcquire(request: SlotRequest, signal?: AbortSignal): Promise<TryAcquireResult> {
    const { client, halt } = this.#options;
    const holdersPrefix = this.holdersPrefix(request.group);
    const key = this.holderKey(request.group, request.id);
    const haltPrefix = this.haltScopePrefix(request.group);
    // One snapshot of holders and halt marks, at one revision.
    const snapshot = await client.txn(
      [],
      [
        { range: { key: holdersPrefix, rangeEnd: prefixEnd(holdersPrefix) } },
        { range: { key: haltPrefix, rangeEnd: prefixEnd(haltPrefix), limit: 20 } },
      ],
      [],
      signal,
    );
    const [holdersRange, haltRange] = snapshot.responses;
    const holders = holdersRange?.kind === "range" ? holdersRange.kvs : [];
    const halts = halt === "slot" || haltRange?.kind !== "range" ? [] : haltRange.kvs;
    const names = holders.map((kv) => this.#holderName(kv));
    const fields = {
      revision: snapshot.revision,
      holders: names.join(",") || null,
      slots: request.slots,
    };
    const mine = holders.find((kv) => kv.key === key);
    if (mine) {
      const value = parseJson<HolderValue>(mine.value);
      if (mine.lease === "0") {
        return {
          granted: false,
          reason: "kept",
          message: `This host keeps a slot in group "${request.group}" from an earlier update ` +
            `(state ${value.state ?? "unknown"}, stage ${value.stage ?? "unknown"}` +
            (value.reason ? `, reason: ${value.reason}` : "") + ").",
          holders: names,
          fields: { ...fields, key, state: value.state ?? null, stage: value.stage ?? null },
        };
      }
      return {
        granted: false,
        reason: "own-lease",
        message: `A slot of this host from an earlier run is still bound to lease ${mine.lease}; ` +
          "it frees itself when that lease expires.",
        holders: names,
        fields: { ...fields, lease: mine.lease },
      };
    }
    if (halts.length > 0) {
      const by = halts.map((kv) => {
        const value = parseJson<HaltValue>(kv.value);
        return `${describeHost(value.id ?? kv.key, value.hostname)} in group ` +
          `"${value.group ?? "?"}": ${value.reason ?? "failed"}`;
      });
      return {
        granted: false,
        reason: "halted",
        message: `The rollout is halted by a failed update: ${by.join("; ")}. An operator must ` +
          "look and run `liveupdate-agent fleet release`.",
        holders: halts.map((kv) => parseJson<HaltValue>(kv.value).id ?? kv.key),
        fields: { ...fields, halted_by: by.join("; ") },
      };
    }
    if (holders.length >= request.slots) {
      return {
        granted: false,
        reason: "full",
        message: `All ${request.slots} slot(s) of group "${request.group}" are held (by ` +
          `${names.join(", ")}).`,
        holders: names,
        fields,
      };
    }
    const sentAt = this.#options.clock.monotonic();
    const lease = await client.grant(this.#options.leaseTtlSeconds, signal);
    const now = this.#now();
    const value: HolderValue = {
      v: 1,
      id: request.id,
      group: request.group,
      hostname: request.info.hostname,
      agent: request.info.agent,
      ...(request.info.attempt ? { attempt: request.info.attempt } : {}),
      state: "updating",
      stage: "acquired",
      slots: request.slots,
      acquired_at: now,
      updated_at: now,
    };
    const compare: EtcdCompare[] = [
      // No holder key CREATED after the snapshot (a key rewritten in place, such as
      // another host's slot made permanent, does not change the count).
      {
        key: holdersPrefix,
        rangeEnd: prefixEnd(holdersPrefix),
        target: "create",
        result: "less",
        createRevision: snapshot.revision + 1,
      },
      { key, target: "create", result: "equal", createRevision: 0 },
    ];
    if (halt !== "slot") {
      compare.push({
        key: haltPrefix,
        rangeEnd: prefixEnd(haltPrefix),
        target: "version",
        result: "equal",
        version: 0,
      });
    }
    let createRevision: number;
    try {
      const result = await client.txn(
        compare,
        [
          { put: { key, value: JSON.stringify(value), lease: lease.id } },
        ],
        [],
        signal,
      );
      if (!result.succeeded) {
        await this.#revokeQuietly(lease.id);
        return {
          granted: false,
          reason: "raced",
          message: `Another host took a slot of group "${request.group}" first.`,
          holders: names,
          fields: { ...fields, revision: result.revision },
        };
      }
      createRevision = result.revision;
    } catch (error) {
      // The answer was lost; the write may have happened. Read back before deciding.
      const back = await client.range(key, {}, signal).catch(() => undefined);
      const kv = back?.kvs[0];
      if (kv === undefined || kv.lease !== lease.id) {
        await this.#revokeQuietly(lease.id);
        throw error;
      }
      createRevision = kv.createRevision;
    }
    const record: SlotRecord = {
      backend: "etcd",
      id: request.id,
      group: request.group,
      acquired_at: now,
      key,
      create_revision: createRevision,
    };
    const keeper = new LeaseKeeper({
      client,
      leaseId: lease.id,
      ttlSeconds: lease.ttl,
      grantSentAt: sentAt,
      clock: this.#options.clock,
      log: this.#options.log,
      what: `the fleet slot of group "${request.group}"`,
    });
    keeper.start();
    const hold = new EtcdHold(this, this.#options, record, value, keeper, lease.id);
    return {
      granted: true,
      hold,
      fields: {
        revision: createRevision,
        key,
        lease: lease.id,
        lease_ttl: lease.ttl,
        holders: [...names, request.id].join(","),
        slots: request.slots,
      },
    };
  }

  async resume(request: SlotRequest, signal?: AbortSignal): Promise<BackendHold | undefined> {
    const key = this.holderKey(request.group, request.id);
    const read = await this.#options.client.range(key, {}, signal);
    const kv = read.kvs[0];
    if (kv === undefined) return undefined;
    const value = parseJson<HolderValue>(kv.value) as HolderValue;
    const record: SlotRecord = {
      backend: "etcd",
      id: request.id,
      group: request.group,
      acquired_at: value.acquired_at ?? this.#now(),
      key,
      create_revision: kv.createRevision,
    };
    // A key still on a lease belongs to an agent that died before making it
    // permanent; it is adopted without a keeper (the flow keeps or frees it).
    return new EtcdHold(this, this.#options, record, value, undefined, kv.lease);
  }

  async halt(request: SlotRequest, reason: string, signal?: AbortSignal): Promise<boolean> {
    if (this.#options.halt === "slot") return false;
    const value: HaltValue = {
      v: 1,
      id: request.id,
      group: request.group,
      hostname: request.info.hostname,
      reason,
      at: this.#now(),
    };
    await this.#options.client.txn(
      [],
      [
        { put: { key: this.haltKey(request.group, request.id), value: JSON.stringify(value) } },
      ],
      [],
      signal,
    );
    return true;
  }

  #holderName(kv: EtcdKeyValue): string {
    const value = parseJson<HolderValue>(kv.value);
    return value.id ?? kv.key.slice(kv.key.lastIndexOf("/") + 1);
  }

  #holderListing(kv: EtcdKeyValue): HolderListing {
    const value = parseJson<HolderValue>(kv.value);
    const parts = kv.key.split("/");
    const listing: HolderListing = {
      id: value.id ?? parts.at(-1)!,
      group: value.group ?? parts.at(-3)!,
      state: value.state ?? "unknown",
      lease_bound: kv.lease !== "0",
    };
    if (value.hostname !== undefined) listing.hostname = value.hostname;
    if (value.stage !== undefined) listing.stage = value.stage;
    if (value.reason !== undefined) listing.reason = value.reason;
    if (value.acquired_at !== undefined) listing.acquired_at = value.acquired_at;
    if (value.updated_at !== undefined) listing.updated_at = value.updated_at;
    if (value.slots !== undefined) listing.slots = value.slots;
    return listing;
  }

  #haltListing(kv: EtcdKeyValue): HaltListing {
    const value = parseJson<HaltValue>(kv.value);
    const parts = kv.key.split("/");
    const listing: HaltListing = {
      id: value.id ?? parts.at(-1)!,
      group: value.group ?? parts.at(-2)!,
    };
    if (value.hostname !== undefined) listing.hostname = value.hostname;
    if (value.reason !== undefined) listing.reason = value.reason;
    if (value.at !== undefined) listing.at = value.at;
    return listing;
  }

  async #snapshot(signal?: AbortSignal) {
    const groups = `${this.#options.prefix}groups/`;
    const halts = `${this.#options.prefix}halt/`;
    const result = await this.#options.client.txn(
      [],
      [
        { range: { key: groups, rangeEnd: prefixEnd(groups) } },
        { range: { key: halts, rangeEnd: prefixEnd(halts) } },
      ],
      [],
      signal,
    );
    const [holderRange, haltRange] = result.responses;
    const holderKvs = holderRange?.kind === "range"
      ? holderRange.kvs.filter((kv) => kv.key.split("/").at(-2) === "holders")
      : [];
    const haltKvs = haltRange?.kind === "range" ? haltRange.kvs : [];
    return { holderKvs, haltKvs, revision: result.revision };
  }

  async list(signal?: AbortSignal): Promise<FleetListing> {
    const { holderKvs, haltKvs, revision } = await this.#snapshot(signal);
    return {
      holders: holderKvs.map((kv) => this.#holderListing(kv)),
      halts: haltKvs.map((kv) => this.#haltListing(kv)),
      revision,
    };
  }

  async operatorRelease(
    who: string,
    group: string,
    options: { force: boolean },
    signal?: AbortSignal,
  ): Promise<OperatorReleaseResult> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const { holderKvs, haltKvs } = await this.#snapshot(signal);
      const matches = (id: string, hostname: string | undefined, keyGroup: string) =>
        (id === who || hostname === who) && (group === "" || keyGroup === group);
      const holders = holderKvs.filter((kv) => {
        const listing = this.#holderListing(kv);
        return matches(listing.id, listing.hostname, listing.group);
      });
      const halts = haltKvs.filter((kv) => {
        const listing = this.#haltListing(kv);
        return matches(listing.id, listing.hostname, listing.group);
      });
      const ids = new Set([
        ...holders.map((kv) => this.#holderListing(kv).id),
        ...halts.map((kv) => this.#haltListing(kv).id),
      ]);
      if (ids.size > 1) {
        throw new FleetError(
          `"${who}" names several hosts (${[...ids].join(", ")}). Give the host id ` +
            "(see `liveupdate-agent fleet status`).",
        );
      }
      const live = holders.filter((kv) => kv.lease !== "0");
      if (live.length > 0 && !options.force) {
        const listing = this.#holderListing(live[0]!);
        throw new FleetError(
          `Host "${listing.id}" is updating right now (stage ` +
            `${listing.stage ?? "unknown"}; its slot is bound to a live lease). Freeing it ` +
            "would let another host start while this one may still change things. Wait, or " +
            "add --force if you know the agent is gone.",
          { exitCode: ExitCode.Busy },
        );
      }
      const all = [...holders, ...halts];
      if (all.length === 0) return { released: [], halts: [] };
      const result = await this.#options.client.txn(
        all.map((kv) => ({
          key: kv.key,
          target: "mod" as const,
          result: "equal" as const,
          modRevision: kv.modRevision,
        })),
        all.map((kv) => ({ deleteRange: { key: kv.key } })),
        [],
        signal,
      );
      if (result.succeeded) {
        return {
          released: holders.map((kv) => this.#holderListing(kv)),
          halts: halts.map((kv) => this.#haltListing(kv)),
        };
      }
    }
    throw new FleetBackendError(
      `The slot of "${who}" kept changing while it was being freed. Try again.`,
    );
  }

  async #revokeQuietly(leaseId: string): Promise<void> {
    try {
      await this.#options.client.revoke(leaseId);
    } catch (error) {
      this.#options.log.debug(`Could not revoke lease ${leaseId}: ${(error as Error).message}`);
    }
  }

  /** Revokes a lease, ignoring failure (it expires on its own). */
  revokeQuietly(leaseId: string): Promise<void> {
    return this.#revokeQuietly(leaseId);
  }
}

/** A slot held in etcd. */
class EtcdHold implements BackendHold {
  readonly #backend: EtcdBackend;
  readonly #options: EtcdBackendOptions;
  readonly #record: SlotRecord;
  #value: HolderValue;
  #keeper: LeaseKeeper | undefined;
  #lease: string;
  readonly #lostWithoutKeeper = new AbortController();

  constructor(
    backend: EtcdBackend,
    options: EtcdBackendOptions,
    record: SlotRecord,
    value: HolderValue,
    keeper: LeaseKeeper | undefined,
    lease: string,
  ) {
    this.#backend = backend;
    this.#options = options;
    this.#record = record;
    this.#value = value;
    this.#keeper = keeper;
    this.#lease = lease;
  }

  get leaseBound(): boolean {
    return this.#lease !== "0";
  }

  get lost(): AbortSignal {
    return this.#keeper?.lost ?? this.#lostWithoutKeeper.signal;
  }

  get record(): SlotRecord {
    return this.#record;
  }

  #lostError(why: string): FleetSlotLostError {
    return new FleetSlotLostError(
      `The fleet slot of group "${this.#record.group}" is no longer this host's: ${why}. ` +
        "The update must not go on; roll back.",
    );
  }

  #ownership(): EtcdCompare[] {
    const key = this.#record.key!;
    const compare: EtcdCompare[] = [
      { key, target: "create", result: "equal", createRevision: this.#record.create_revision! },
    ];
    if (this.leaseBound) {
      compare.push({ key, target: "lease", result: "equal", lease: this.#lease });
    }
    return compare;
  }

  async persist(
    change: PersistChange,
    signal?: AbortSignal,
  ): Promise<Record<string, DecisionValue>> {
    this.lost.throwIfAborted();
    const { client, halt } = this.#options;
    const key = this.#record.key!;
    const value: HolderValue = {
      ...this.#value,
      state: change.failed ? "failed" : "updating",
      stage: change.stage ?? this.#value.stage,
      updated_at: this.#options.clock.now().toISOString(),
    };
    if (change.reason !== undefined) value.reason = change.reason;
    else delete value.reason;
    const ops: { put: { key: string; value: string } }[] = [
      { put: { key, value: JSON.stringify(value) } },
    ];
    const halting = change.failed && halt !== "slot";
    if (halting) {
      const mark: HaltValue = {
        v: 1,
        id: value.id,
        group: value.group,
        reason: change.reason ?? `update failed at stage ${value.stage}`,
        at: value.updated_at,
        ...(value.hostname ? { hostname: value.hostname } : {}),
      };
      ops.push({
        put: { key: this.#backend.haltKey(value.group, value.id), value: JSON.stringify(mark) },
      });
    }
    // While lease-bound, the write may not outlive the lease.
    const guard = signal ? AbortSignal.any([signal, this.lost]) : this.lost;
    let result;
    try {
      result = await client.txn(this.#ownership(), ops, [{ range: { key } }], guard);
    } catch (error) {
      if (this.lost.aborted) throw this.lost.reason;
      // The answer was lost; the write may have happened. Read back.
      const back = await client.range(key, {}, signal).catch(() => undefined);
      const kv = back?.kvs[0];
      if (kv === undefined || kv.value !== JSON.stringify(value) || kv.lease !== "0") throw error;
      result = { succeeded: true, revision: kv.modRevision, responses: [] };
    }
    if (!result.succeeded) {
      const now = result.responses[0];
      const why = now?.kind === "range" && now.kvs.length > 0
        ? "its key changed (an operator released it and it was taken again)"
        : this.leaseBound
        ? "its lease expired or an operator released it"
        : "an operator released it";
      const error = this.#lostError(why);
      if (this.#keeper) this.#keeper.markLost(why);
      else this.#lostWithoutKeeper.abort(error);
      if (this.leaseBound) {
        const lease = this.#lease;
        this.#lease = "0";
        await this.#keeper?.stop();
        await this.#backend.revokeQuietly(lease);
      }
      throw error;
    }
    this.#value = value;
    const fields: Record<string, DecisionValue> = {
      revision: result.revision,
      key,
      stage: value.stage,
      halt: halting ? halt : null,
    };
    if (this.leaseBound) {
      const lease = this.#lease;
      this.#lease = "0";
      await this.#keeper?.stop();
      await this.#backend.revokeQuietly(lease);
      fields.detached_lease = lease;
    }
    return fields;
  }

  async release(signal?: AbortSignal) {
    const key = this.#record.key!;
    const result = await this.#options.client.txn(
      [{ key, target: "create", result: "equal", createRevision: this.#record.create_revision! }],
      [{ deleteRange: { key } }],
      [],
      signal,
    );
    if (this.leaseBound) {
      const lease = this.#lease;
      this.#lease = "0";
      await this.#keeper?.stop();
      await this.#backend.revokeQuietly(lease);
    }
    return {
      outcome: result.succeeded ? "released" as const : "gone" as const,
      fields: { revision: result.revision, key },
    };
  }

  async close(): Promise<void> {
    await this.#keeper?.stop();
  }
}

/**
 * Hosts of a rollout of REAL agents: each host is the integration tier's
 * rehearsal host (tests/integration/_update_rig.ts: its own simulated LUO kernel,
 * private systemd manager, fake /proc and kexec, configuration root) plus a
 * fleet drop-in, and the agent is `liveupdate-agent` itself, run as a
 * subprocess per command: `prepare` (which issues the simulated kexec through
 * `kexec.issue = "command"`), then, in the "new kernel", `finish`.
 *
 * What a rollout is checked with comes from the hosts' attempt records: each
 * attempt's fleet timings (`slot_acquired`, `healthy`, …) and decisions.
 *
 * @module
 */

import type { FleetRuntimeState } from "../../agent/fleet/mod.ts";
import { readFleetState } from "../../agent/fleet/mod.ts";
import type { AttemptRecord } from "../../agent/store/mod.ts";
import type { FleetNotes } from "../../agent/update/mod.ts";
import { SMALL, startUpdateRig, type UpdateRig } from "../integration/_update_rig.ts";
import type { UpdateInterval } from "./rollout_driver.ts";

/** One host of the rollout. */
export interface AgentHost {
  index: number;
  /** Its fleet host id ("host-07"). */
  id: string;
  rig: UpdateRig;
}

/** How one agent command ended. */
export interface AgentRun {
  args: string[];
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link AgentHosts.start}. */
export interface AgentHostsOptions {
  count: number;
  /** Host i's fleet drop-in (TOML, appended to the rig's own). */
  config(id: string, index: number): string;
  /** How many hosts are set up at once (default 4). */
  concurrency?: number;
}

const decoder = new TextDecoder();

/** The hosts of a rollout. Dispose of them to kill what runs and tear every host down. */
export class AgentHosts implements AsyncDisposable {
  readonly hosts: AgentHost[];
  readonly #running = new Set<Deno.ChildProcess>();

  private constructor(hosts: AgentHost[]) {
    this.hosts = hosts;
  }

  /** Sets up `count` hosts (simulator, private systemd, configuration) and starts "vmm.service" on each. */
  static async start(options: AgentHostsOptions): Promise<AgentHosts> {
    const hosts: AgentHost[] = [];
    const fleet = new AgentHosts(hosts);
    try {
      const concurrency = options.concurrency ?? 4;
      for (let first = 0; first < options.count; first += concurrency) {
        const batch = [];
        for (let index = first; index < Math.min(options.count, first + concurrency); index++) {
          batch.push((async () => {
            const id = `host-${String(index).padStart(2, "0")}`;
            const rig = await startUpdateRig({ config: options.config(id, index) });
            hosts.push({ index, id, rig });
            await rig.start("vmm.service");
          })());
        }
        const results = await Promise.allSettled(batch);
        const failed = results.find((r) => r.status === "rejected");
        if (failed) throw (failed as PromiseRejectedResult).reason;
      }
      hosts.sort((a, b) => a.index - b.index);
      return fleet;
    } catch (error) {
      await fleet[Symbol.asyncDispose]();
      throw error;
    }
  }

  /** Host `index`. */
  host(index: number): AgentHost {
    return this.hosts[index]!;
  }

  /** Runs `liveupdate-agent ARGS --config-root=<host's>` as a subprocess. */
  async run(host: AgentHost, args: string[], env: Record<string, string> = {}): Promise<AgentRun> {
    const child = new Deno.Command(Deno.execPath(), {
      args: host.rig.cliArgs(...args),
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#running.add(child);
    try {
      const output = await child.output();
      return {
        args,
        code: output.code,
        signal: output.signal,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
      };
    } finally {
      this.#running.delete(child);
    }
  }

  /** The drivers of the new kernel reclaim the preserved devices (as the VMs resume). */
  async reclaim(host: AgentHost): Promise<void> {
    for (const path of [...SMALL.selected, ...SMALL.ancestors]) {
      await host.rig.sim.setReclaimed(path);
    }
  }

  /**
   * A whole live update of `host`: `prepare` (waits for a slot, prepares, issues
   * the simulated kexec); when it succeeded, the devices are reclaimed and
   * `finish` runs. Returns both runs.
   */
  async update(
    host: AgentHost,
    env: Record<string, string> = {},
  ): Promise<{ prepare: AgentRun; finish?: AgentRun }> {
    const prepare = await this.run(host, ["prepare"], env);
    if (prepare.code !== 0) return { prepare };
    await this.reclaim(host);
    return { prepare, finish: await this.run(host, ["finish"]) };
  }

  /** Every attempt record of `host`, oldest first. */
  async records(host: AgentHost): Promise<AttemptRecord[]> {
    const list: AttemptRecord[] = [];
    try {
      for await (const entry of Deno.readDir(`${host.rig.stateDir}/attempts`)) {
        if (!entry.name.endsWith(".json")) continue;
        list.push(
          JSON.parse(await Deno.readTextFile(`${host.rig.stateDir}/attempts/${entry.name}`)),
        );
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return list.sort((a, b) => a.created.localeCompare(b.created));
  }

  /** The fleet state file of `host` (what `status` shows). */
  fleetState(host: AgentHost): Promise<FleetRuntimeState | undefined> {
    return readFleetState(Deno, `${host.rig.dir}/run`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const child of this.#running) {
      try {
        child.kill("SIGKILL");
      } catch {
        // ended meanwhile
      }
    }
    const errors: unknown[] = [];
    for (const host of this.hosts) {
      try {
        await host.rig[Symbol.asyncDispose]();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "tearing hosts down failed");
  }
}

/** The fleet notes of a record (undefined when it took no part in a fleet). */
export function fleetNotes(record: AttemptRecord): FleetNotes | undefined {
  return record.notes.fleet as FleetNotes | undefined;
}

/**
 * The slot intervals of the hosts' attempts, from their records: from the grant
 * (`slot_acquired`) to the health gate passing (`healthy`), i.e. a superset of
 * "between prepare and healthy finish". An attempt that kept its slot runs to
 * `keptUntil(host, record)` (when the operator freed it; undefined leaves the
 * attempt out); one that gave the slot up unused or lost it, to then.
 */
export async function slotIntervals(
  hosts: AgentHosts,
  keptUntil: (host: AgentHost, record: AttemptRecord) => number | undefined,
): Promise<UpdateInterval[]> {
  const intervals: UpdateInterval[] = [];
  for (const host of hosts.hosts) {
    for (const record of await hosts.records(host)) {
      const notes = fleetNotes(record);
      const start = record.timings.slot_acquired;
      if (!notes || typeof start !== "string") continue;
      const lost = notes.decisions.find((d) => d.kind === "slot-lost")?.time;
      const end = record.timings.healthy ?? record.timings.slot_abandoned ?? lost;
      const until = typeof end === "string" ? Date.parse(end) : keptUntil(host, record);
      if (until === undefined) continue;
      intervals.push({
        agent: host.index,
        group: notes.group,
        start: Date.parse(start),
        end: until,
        how: notes.state,
      });
    }
  }
  return intervals;
}

/**
 * Runs N agents through "acquire → update → healthy → release" cycles and checks
 * fleet-wide properties from what they record: never more hosts updating at
 * once than there are slots (from the agents' timestamps, and from etcd's own
 * history of the slot keys), every agent done, no slot left behind.
 *
 * The agent program is pluggable (`spawn`): the fault cases use the stand-in
 * of `fleet_agent.ts`; rollouts of the real agent, each on its own simulated
 * kernel and private systemd, are driven by agent_hosts.ts and checked with
 * {@link maxOverlap} and {@link maxHoldersInHistory} from here. So is how its record is read
 * (`readEvents`): JSON lines `{event, t}` with "update-start" when the host may
 * start changing things, "update-end" when it is healthy again after finish,
 * "lost" when it gave up a slot it lost, "acquired"/"released" with the etcd
 * revision.
 *
 * @module
 */

import { EtcdClient } from "../../agent/fleet/mod.ts";
import { waitFor } from "./wait.ts";

/** One agent of a rollout. */
export interface RolloutAgent {
  index: number;
  id: string;
  group: string;
  /** Its directory (config root, record). */
  dir: string;
  recordFile: string;
}

/** One line of an agent's record. */
export interface AgentEvent {
  event: string;
  /** Wall-clock time, ms since the epoch (sub-millisecond). */
  t: number;
  [field: string]: unknown;
}

/** Options of {@link Rollout.create}. */
export interface RolloutOptions {
  agents: number;
  name: string;
  /** Agent i's group (default "default"). */
  group?(index: number): string;
  /** Agent i's configuration drop-in (TOML). */
  config(agent: RolloutAgent): string;
  /** Starts agent i: what it does is the update step under test. */
  spawn(agent: RolloutAgent): Deno.ChildProcess;
  readEvents?(agent: RolloutAgent): Promise<AgentEvent[]>;
}

/** How an agent process ended. */
export interface AgentExit {
  code: number;
  signal: Deno.Signal | null;
  stderr: string;
}

/** An update interval of one agent. */
export interface UpdateInterval {
  agent: number;
  group: string;
  start: number;
  end: number;
  /** How it ended: healthy ("update-end") or gave up a lost slot ("lost"). */
  how: string;
}

/** Reads JSON lines of `file`; missing file: none. */
export async function readJsonLines(file: string): Promise<AgentEvent[]> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
}

/** A rollout of N agent processes. Dispose it to kill what still runs and remove its files. */
export class Rollout implements AsyncDisposable {
  readonly agents: RolloutAgent[];
  readonly dir: string;
  readonly #options: RolloutOptions;
  readonly #running = new Map<number, { child: Deno.ChildProcess; exit: Promise<AgentExit> }>();
  readonly exits = new Map<number, AgentExit>();

  private constructor(options: RolloutOptions, dir: string, agents: RolloutAgent[]) {
    this.#options = options;
    this.dir = dir;
    this.agents = agents;
  }

  /** Prepares every agent's directory and configuration; starts nothing. */
  static async create(options: RolloutOptions): Promise<Rollout> {
    const dir = await Deno.makeTempDir({ prefix: `liveupdate-fleet-${options.name}-` });
    const agents: RolloutAgent[] = [];
    for (let index = 0; index < options.agents; index++) {
      const agentDir = `${dir}/agent-${String(index).padStart(2, "0")}`;
      const agent = {
        index,
        id: `host-${String(index).padStart(2, "0")}`,
        group: options.group?.(index) ?? "default",
        dir: agentDir,
        recordFile: `${agentDir}/record.jsonl`,
      };
      await Deno.mkdir(`${agentDir}/etc/liveupdate/config.d`, { recursive: true });
      await Deno.writeTextFile(
        `${agentDir}/etc/liveupdate/config.d/50-fleet.toml`,
        `[paths]\nruntime_dir = "${agentDir}/run"\n${options.config(agent)}`,
      );
      agents.push(agent);
    }
    return new Rollout(options, dir, agents);
  }

  /** Starts the agents `indexes` (default: all). */
  start(indexes: number[] = this.agents.map((agent) => agent.index)): void {
    for (const index of indexes) {
      if (this.#running.has(index)) throw new Error(`agent ${index} is running`);
      const child = this.#options.spawn(this.agents[index]!);
      const exit = Promise.all([child.status, new Response(child.stderr).text()]).then(
        ([status, stderr]) => {
          const result = { code: status.code, signal: status.signal, stderr };
          this.exits.set(index, result);
          this.#running.delete(index);
          return result;
        },
      );
      this.#running.set(index, { child, exit });
    }
  }

  /** Whether agent `index` still runs. */
  running(index: number): boolean {
    return this.#running.has(index);
  }

  /** Sends `signal` to agent `index` and waits for it to end. */
  async kill(index: number, signal: Deno.Signal = "SIGKILL"): Promise<AgentExit> {
    const running = this.#running.get(index);
    if (!running) return this.exits.get(index)!;
    running.child.kill(signal);
    return await running.exit;
  }

  /** The record of agent `index`. */
  events(index: number): Promise<AgentEvent[]> {
    const agent = this.agents[index]!;
    return this.#options.readEvents?.(agent) ?? readJsonLines(agent.recordFile);
  }

  /** Every agent's record. */
  allEvents(): Promise<AgentEvent[][]> {
    return Promise.all(this.agents.map((agent) => this.events(agent.index)));
  }

  /** Waits until agent `index` has recorded `event` (`count` times); returns the last one. */
  async waitForEvent(
    index: number,
    event: string,
    timeoutMs = 60_000,
    count = 1,
  ): Promise<AgentEvent> {
    let found: AgentEvent | undefined;
    await waitFor(async () => {
      const events = (await this.events(index)).filter((e) => e.event === event);
      found = events.length >= count ? events.at(-1) : undefined;
      if (!found && !this.running(index)) {
        const exit = this.exits.get(index);
        throw new Error(
          `agent ${index} ended (code ${exit?.code}) before recording "${event}": ${exit?.stderr}`,
        );
      }
      return found !== undefined;
    }, { timeoutMs, what: `agent ${index} to record "${event}"`, intervalMs: 25 });
    return found!;
  }

  /** Waits for every running agent to end; returns their exits. */
  async finish(timeoutMs: number): Promise<Map<number, AgentExit>> {
    await waitFor(() => this.#running.size === 0, {
      timeoutMs,
      what: `${this.#running.size} agent(s) to finish`,
      intervalMs: 50,
    });
    return this.exits;
  }

  /**
   * The update intervals of every agent: from "update-start" to "update-end"
   * (healthy) or "lost" (it gave up the slot); an interval with no end (a killed
   * agent) runs to `openEnd`.
   */
  async intervals(openEnd = Infinity): Promise<UpdateInterval[]> {
    const result: UpdateInterval[] = [];
    for (const agent of this.agents) {
      let start: number | undefined;
      for (const event of await this.events(agent.index)) {
        if (event.event === "update-start") start = event.t;
        if ((event.event === "update-end" || event.event === "lost") && start !== undefined) {
          result.push({
            agent: agent.index,
            group: agent.group,
            start,
            end: event.t,
            how: event.event,
          });
          start = undefined;
        }
      }
      if (start !== undefined) {
        result.push({ agent: agent.index, group: agent.group, start, end: openEnd, how: "open" });
      }
    }
    return result;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const index of [...this.#running.keys()]) await this.kill(index);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** The most intervals of one group that overlap at any moment (ends sort before starts). */
export function maxOverlap(intervals: readonly UpdateInterval[]): number {
  const points = intervals.flatMap((i) => [[i.start, 1], [i.end, -1]] as [number, number][]);
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let current = 0;
  let max = 0;
  for (const [, delta] of points) {
    current += delta;
    max = Math.max(max, current);
  }
  return max;
}

/** {@link maxOverlap} per group. */
export function maxOverlapByGroup(intervals: readonly UpdateInterval[]): Map<string, number> {
  const groups = new Map<string, UpdateInterval[]>();
  for (const interval of intervals) {
    groups.set(interval.group, [...groups.get(interval.group) ?? [], interval]);
  }
  return new Map([...groups].map(([group, list]) => [group, maxOverlap(list)]));
}

/**
 * The most holder keys any group had at any revision of etcd's history, read
 * revision by revision (the test cluster never compacts). This is etcd's own
 * account: no double-granted slot at any moment.
 */
export async function maxHoldersInHistory(
  endpoints: readonly string[],
  prefix: string,
): Promise<{ max: Map<string, number>; revisions: number; final: number }> {
  const client = new EtcdClient({
    endpoints,
    requestTimeoutMs: 10_000,
    httpClient: Deno.createHttpClient({}),
  });
  try {
    const groupsPrefix = `${prefix}groups/`;
    const head = await client.range(groupsPrefix, { prefix: true });
    const max = new Map<string, number>();
    let final = 0;
    for (let revision = 1; revision <= head.revision; revision++) {
      const at = await client.range(groupsPrefix, { prefix: true, revision });
      const counts = new Map<string, number>();
      for (const kv of at.kvs) {
        const parts = kv.key.slice(groupsPrefix.length).split("/");
        if (parts[1] !== "holders") continue;
        counts.set(parts[0]!, (counts.get(parts[0]!) ?? 0) + 1);
      }
      for (const [group, count] of counts) max.set(group, Math.max(max.get(group) ?? 0, count));
      if (revision === head.revision) final = at.kvs.length;
    }
    return { max, revisions: head.revision, final };
  } finally {
    client.close();
  }
}

/** Starts the stand-in agent (`fleet_agent.ts`) for `agent` with extra flags. */
export function standInAgent(agent: RolloutAgent, flags: string[] = []): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("./fleet_agent.ts", import.meta.url).pathname,
      `--config-root=${agent.dir}`,
      `--record=${agent.recordFile}`,
      ...flags,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

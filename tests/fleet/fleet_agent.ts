/**
 * A STAND-IN agent process for the fleet rollout tests. It drives the real fleet
 * layer (configuration, host id, etcd or FleetLock, leases, decisions, health
 * gate) exactly as the update flow will, around an update step that only STANDS
 * IN for prepare → kexec → finish: it waits a little while the slot is
 * lease-bound (the undo-able part), makes the slot permanent (where the flow
 * writes the kernel's prepare), drops its coordinator and resumes the slot from
 * a new one (as liveupdate-finish does in the new kernel), passes a health gate
 * and releases. It changes nothing on the host. The etcd fault cases
 * (faults_test.ts: a member killed, a client partitioned, a dozen agents each)
 * use it because they test the fleet layer against etcd, not the update; the
 * rollouts of real agents are in rollout_test.ts (agent_hosts.ts).
 *
 * Every step is appended to `--record` as a JSON line `{event, t, …}` (t: wall
 * clock, ms), and so is every fleet decision: the attempt record of the future.
 *
 * Usage:
 *   deno run -A tests/fleet/fleet_agent.ts --config-root=DIR --record=FILE
 *     [--mode=rollout|hold] [--fail] [--pre-ms=N] [--first-pre-ms=N] [--blackout-ms=N]
 *     [--jitter-ms=N] [--hold-stage=acquired|kernel-prepare] [--retry-after-loss]
 *     [--pre-until=FILE]
 *
 * The stand-in update waits pre-ms (the first round: first-pre-ms) while the slot
 * is lease-bound, then blackout-ms between "kexec" and "boot"; each plus a
 * random 0..jitter-ms. With --pre-until, the lease-bound part lasts until FILE
 * exists (the test decides when the update goes on).
 *
 * Exit codes: 0 released after a healthy update; 1 the stand-in update failed
 * and kept its slot; 3 the slot was lost (without --retry-after-loss); 8 the
 * wait timed out; hold mode never exits on its own.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../../agent/config/mod.ts";
import {
  createFleet,
  type FleetCoordinator,
  type FleetDecision,
  FleetSlotLostError,
  FleetTimeoutError,
  healthGate,
} from "../../agent/fleet/mod.ts";
import { createRealHost, type Output } from "../../agent/host/mod.ts";
import { createLogger } from "../../agent/log/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "config-root": { type: "string" },
    record: { type: "string" },
    mode: { type: "string", default: "rollout" },
    fail: { type: "boolean", default: false },
    "pre-ms": { type: "string", default: "20" },
    "first-pre-ms": { type: "string" },
    "blackout-ms": { type: "string", default: "50" },
    "jitter-ms": { type: "string", default: "60" },
    "hold-stage": { type: "string", default: "acquired" },
    "retry-after-loss": { type: "boolean", default: false },
    "pre-until": { type: "string" },
  },
  strict: true,
});

const recordFile = values.record!;
const encoder = new TextEncoder();
const record = (event: string, fields: Record<string, unknown> = {}) => {
  const line = JSON.stringify({ event, t: performance.timeOrigin + performance.now(), ...fields });
  Deno.writeFileSync(recordFile, encoder.encode(line + "\n"), { append: true });
};
const logFile = Deno.openSync(`${recordFile}.log`, { create: true, append: true });
const logOutput: Output = {
  write: (text) => void logFile.writeSync(encoder.encode(text)),
  isTerminal: () => false,
};
const host = createRealHost();
const log = createLogger({ output: logOutput, clock: host.clock, level: "debug", format: "json" });
const { config } = await loadConfig(host.fs, { root: values["config-root"]! });
const onDecision = (decision: FleetDecision) => record("decision", { decision });
const attempt = crypto.randomUUID();

async function newFleet(): Promise<FleetCoordinator> {
  const fleet = await createFleet(config, host, log, { hostname: Deno.hostname() });
  if (!fleet) throw new Error("fleet.backend is none");
  return fleet;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return host.clock.sleep(ms, signal);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

function jitter(): number {
  return Math.random() * Number(values["jitter-ms"]);
}

function revisionOf(decisions: readonly FleetDecision[], kind: string): unknown {
  return decisions.findLast((d) => d.kind === kind)?.fields.revision ?? null;
}

async function hold(): Promise<never> {
  const fleet = await newFleet();
  const slot = await fleet.acquire({ attempt, onDecision });
  record("acquired", { revision: revisionOf(slot.decisions, "slot-acquired") });
  if (values["hold-stage"] === "kernel-prepare") {
    await slot.persist("kernel-prepare");
    record("persisted", { revision: revisionOf(slot.decisions, "slot-persisted") });
  }
  record("holding", { stage: values["hold-stage"], lease_bound: slot.state === "held" });
  slot.signal.addEventListener("abort", () => record("lost"));
  // Until killed.
  await new Promise(() => setInterval(() => {}, 60_000));
  throw new Error("unreachable");
}

async function rollout(): Promise<number> {
  for (let round = 0;; round++) {
    record("start", { round });
    const fleet = await newFleet();
    const slot = await fleet.acquire({ attempt, onDecision });
    record("acquired", { revision: revisionOf(slot.decisions, "slot-acquired"), round });
    record("update-start", { round });
    try {
      // Stand-in for the undo-able part (device requests, phase "prepare" units).
      const pre = (round === 0 && values["first-pre-ms"] !== undefined
        ? Number(values["first-pre-ms"])
        : Number(values["pre-ms"])) + jitter();
      await sleep(pre, slot.signal);
      while (values["pre-until"] && !await exists(values["pre-until"])) {
        await sleep(20, slot.signal);
      }
      // Where the flow writes 1 > prepare: the slot must outlive us from here.
      await slot.persist("kernel-prepare");
      record("persisted", { revision: revisionOf(slot.decisions, "slot-persisted") });
      if (values.fail) {
        await slot.keep("stand-in update failed (--fail)", { stage: "kernel-prepare" });
        record("kept", { revision: revisionOf(slot.decisions, "slot-kept") });
        await slot.close();
        fleet.close();
        return 1;
      }
    } catch (error) {
      if (!(error instanceof FleetSlotLostError) && !slot.signal.aborted) throw error;
      record("lost", { message: (error as Error).message, round });
      await slot.close();
      fleet.close();
      if (!values["retry-after-loss"]) return 3;
      continue;
    }
    // Stand-in for the kexec: this process's coordinator goes away; a new one
    // (the new kernel's liveupdate-finish) finds the permanent slot.
    await slot.close();
    fleet.close();
    await sleep(Number(values["blackout-ms"]) + jitter());
    const after = await newFleet();
    const resumed = await after.resume({ record: slot.record, attempt, onDecision });
    if (!resumed) throw new Error("the permanent slot was not found after the stand-in kexec");
    const gate = healthGate([{
      name: "stand-in",
      check: () => {
        record("update-end", { round });
        return Promise.resolve({ ok: true, detail: "stand-in update step: nothing to check" });
      },
    }]);
    const outcome = await resumed.release(gate);
    record("released", { revision: revisionOf(outcome.decisions, "slot-released"), round });
    after.close();
    return 0;
  }
}

try {
  const code = values.mode === "hold" ? await hold() : await rollout();
  record("exit", { code });
  logFile.close();
  Deno.exit(code);
} catch (error) {
  record("error", { message: (error as Error).message, name: (error as Error).name });
  logFile.close();
  Deno.exit(error instanceof FleetTimeoutError ? 8 : 2);
}

/**
 * Finishing an update in the new kernel: verify that the booted kernel is the
 * recorded target and that the handover carries the recorded version, run phase
 * "updated", wait until the preserved devices are reclaimed, finish the kernel,
 * run phase "finish". Every step is journaled; a failing step is recorded and the
 * rest still run, because the kernel must leave state `updated` in any case.
 *
 * @module
 */

import { checkHandover, parseLuoVersion } from "../compat/mod.ts";
import { ownershipStoreFor } from "../devices/mod.ts";
import { describeError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { Kernel } from "../kernel/mod.ts";
import type { AttemptRecord, StepEntry } from "../store/mod.ts";
import { runPhase, type SystemdManager } from "../systemd/mod.ts";
import type { UpdateContext } from "./context.ts";
import { settleSlotAfterFinish } from "./fleet_slot.ts";
import { isMainline, verifyMainline, waitForSessions } from "./mainline_steps.ts";
import type { Plan } from "./plan.ts";
import { closeRecord, noteFailure, saveRecord } from "./record.ts";
import { UpdateFailedError } from "./update_error.ts";

interface FinishStep {
  name: string;
  run(): Promise<unknown>;
}

function ms(from: unknown, to: unknown): number | undefined {
  if (typeof from !== "string" || typeof to !== "string") return undefined;
  const a = Date.parse(from);
  const b = Date.parse(to);
  return Number.isNaN(a) || Number.isNaN(b) ? undefined : b - a;
}

/** Waits until every preserved device of the plan is reclaimed, or the timeout. */
async function waitForReclaim(
  context: UpdateContext,
  kernel: Kernel,
  plan: Plan,
): Promise<Record<string, unknown>> {
  const devices = kernel.devices;
  const summary: Record<string, unknown> = {
    selected: plan.devices.selected.length,
    preserved: 0,
    reclaimed: 0,
    unreclaimed: 0,
  };
  if (!devices) return summary;
  const units = new Map(plan.devices.selected.map((d) => [d.path, d.unit]));
  const paths = [
    ...new Set([...plan.devices.selected.map((d) => d.path), ...plan.devices.ancestors]),
  ];
  const deadline = context.clock.monotonic() + context.config.devices.reclaim_timeout;
  let delay = 100;
  let pending: string[] = [];
  let preserved = 0;
  for (;;) {
    pending = [];
    preserved = 0;
    for (const path of paths) {
      try {
        const flags = await devices.readDevice(path);
        if (!flags.preserved) continue;
        preserved++;
        if (!flags.reclaimed) pending.push(path);
      } catch (error) {
        context.log.warning(`Cannot read the flags of "${path}": ${describeError(error)}`, {
          device: path,
        });
      }
    }
    if (pending.length === 0 || context.clock.monotonic() >= deadline) break;
    await context.clock.sleep(Math.min(delay, Math.max(0, deadline - context.clock.monotonic())));
    delay = Math.min(delay * 2, 1000);
  }
  for (const path of pending) {
    const unit = units.get(path);
    context.log.event(
      "device-not-reclaimed",
      `Device "${path}" was not reclaimed within ${
        context.config.devices.reclaim_timeout / 1000
      }s` +
        (unit ? `; ${unit} should reclaim it.` : " (an ancestor of a preserved device)."),
      { device: path, ...(unit ? { unit } : {}) },
    );
  }
  summary.preserved = preserved;
  summary.reclaimed = preserved - pending.length;
  summary.unreclaimed = pending.length;
  if (pending.length > 0) {
    summary.unreclaimed_devices = pending.map((path) => ({ path, unit: units.get(path) ?? null }));
  }
  return summary;
}

/**
 * Runs the finish steps not done yet (a restarted finish picks up where it was),
 * then closes the record. Returns it; throws UpdateFailedError when a step failed
 * (the record says which; the update itself is finished in the kernel).
 */
export async function finishUpdate(
  context: UpdateContext,
  kernel: Kernel,
  record: AttemptRecord,
  manager: SystemdManager,
): Promise<AttemptRecord> {
  const { log, clock } = context;
  const plan = record.plan as unknown as Plan;
  const phase = (name: string) => plan.phases.find((p) => p.phase === name);
  const phaseContext = { manager, log, clock };
  if (record.status !== "finishing") {
    record.status = "finishing";
    record.timings.agent_started = context.startedAt.toISOString();
    let uptime: number | undefined;
    try {
      uptime = context.facts.uptimeSeconds();
    } catch (error) {
      log.warning(`The boot time is unknown: ${describeError(error)}`);
    }
    if (uptime !== undefined) {
      const booted = new Date(clock.now().getTime() - uptime * 1000).toISOString();
      const since = ms(record.timings.kexec_issued, booted);
      if (since !== undefined && since >= 0) {
        record.timings.booted = booted;
        record.timings.blackout_ms = since;
      }
    }
    await saveRecord(context, record);
  }
  const steps: FinishStep[] = [
    {
      name: "verify",
      run: async () => {
        const problems: string[] = [];
        const compat = await context.compat().catch(() => undefined);
        const booted = compat?.running.release ?? null;
        const expected = record.kernels.target.release;
        if (expected && booted && booted !== expected) {
          problems.push(`The booted kernel is "${booted}", but the update targeted "${expected}".`);
        }
        const incoming = await kernel.incoming();
        let result: Record<string, unknown>;
        if (isMainline(kernel)) {
          // Compatible strings and the liveupdate number instead of a version (mainline).
          const verified = verifyMainline(kernel.sessions, record);
          problems.push(...verified.problems);
          const handover = incoming.status === "present"
            ? `The previous kernel handed its sessions over: ${incoming.detail ?? incoming.file}.`
            : `No live-update handover arrived: ${incoming.detail}`;
          result = { booted, expected, handover, checks: verified.checks, problems };
        } else {
          const handover = checkHandover(
            parseLuoVersion(record.kernels.running.luo_version ?? "") ?? null,
            incoming,
          );
          if (!handover.matches && incoming.status === "present") {
            problems.push(handover.sentence);
          }
          result = { booted, expected, handover: handover.sentence, problems };
        }
        if (problems.length === 0) return result;
        // Reported loudly, and the attempt ends failed (a fleet rollout halts), but the
        // update is finished all the same: the kernel cannot go back.
        for (const problem of problems) log.event("version-mismatch", problem);
        throw Object.assign(new Error(problems.join(" ")), { partialResult: result });
      },
    },
    {
      name: "phase-updated",
      run: async () => {
        const report = await runPhase(phaseContext, phase("updated")!);
        log.event("phase-done", 'Phase "updated" done.', { phase: "updated" });
        return { changes: report.changes, durationMs: report.durationMs };
      },
    },
    {
      name: "reclaim-devices",
      run: async () => {
        const summary = await waitForReclaim(context, kernel, plan);
        record.notes.devices = summary;
        return summary;
      },
    },
    // Mainline: the clients claim their sessions from the broker (started by phase
    // "updated" or on their own); wait until the broker has settled every one.
    ...(isMainline(kernel)
      ? [{
        name: "claim-sessions",
        run: async () => {
          try {
            return record.notes.sessions = await waitForSessions(context, record);
          } catch (error) {
            const partial = (error as { partialResult?: unknown }).partialResult;
            if (partial !== undefined) record.notes.sessions = partial;
            throw error;
          }
        },
      }]
      : []),
    {
      name: "finish-kernel",
      run: async () => {
        const machine = kernel.stateMachine;
        if (machine && await machine.state() === "updated") await machine.finish();
        return { state: machine ? await machine.state() : null };
      },
    },
    {
      name: "phase-finish",
      run: async () => {
        const report = await runPhase(phaseContext, phase("finish")!);
        log.event("phase-done", 'Phase "finish" done.', { phase: "finish" });
        return { changes: report.changes, durationMs: report.durationMs };
      },
    },
    {
      name: "forget-devices",
      run: async () => {
        // The new kernel starts with no device requested: the old record is void.
        await ownershipStoreFor(context.config, context.fs).save(new Map());
        return null;
      },
    },
  ];
  const failures: string[] = [];
  for (const step of steps) {
    const done = record.steps.find((entry) => entry.name === step.name && entry.status === "done");
    if (done) continue;
    const entry: StepEntry = {
      name: step.name,
      status: "started",
      started: clock.now().toISOString(),
    };
    record.steps = record.steps.filter((e) => e.name !== step.name);
    record.steps.push(entry);
    await saveRecord(context, record);
    await context.onJournal?.(step.name, "started");
    try {
      entry.result = (await step.run()) ?? null;
      entry.status = "done";
    } catch (error) {
      entry.status = "failed";
      entry.error = describeError(error);
      const partial = (error as { partialResult?: unknown }).partialResult;
      if (partial !== undefined) entry.result = partial;
      noteFailure(record, step.name, error);
      failures.push(`${step.name}: ${entry.error}`);
      log.event("step-failed", `Step ${step.name} failed: ${entry.error}`, { step: step.name });
    }
    entry.ended = clock.now().toISOString();
    await saveRecord(context, record);
    await context.onJournal?.(step.name, entry.status);
  }
  // The fleet slot: released after the health gate, or kept (fleet_slot.ts).
  const unhealthy = await settleSlotAfterFinish(context, record, kernel, manager, failures);
  if (unhealthy) failures.push(`fleet: ${unhealthy}`);
  const verify = record.steps.find((e) => e.name === "verify")?.result as
    | { problems?: string[] }
    | undefined;
  if (verify?.problems?.length) record.notes.verification = verify.problems;
  record.timings.finished = clock.now().toISOString();
  const total = ms(record.timings.kexec_issued, record.timings.finished);
  if (total !== undefined && total >= 0) record.timings.kexec_to_finish_ms = total;
  if (failures.length > 0) {
    const message = `The update was finished in the kernel, but ${failures.length} step(s) ` +
      `failed: ${failures.join("; ")}.`;
    await closeRecord(context, record, "failed", message, ExitCode.Failed);
    throw new UpdateFailedError(message);
  }
  const message = `Live update ${record.id} succeeded: now running ` +
    `${record.kernels.target.release ?? "the target kernel"}.`;
  log.event("update-succeeded", message, { attempt: record.id });
  await closeRecord(context, record, "succeeded", message, ExitCode.Success);
  return record;
}

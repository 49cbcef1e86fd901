/**
 * `finish` and `recover`: look at the journal and the kernel's state and bring
 * the host to a known state. After a live-update boot that means finishing the
 * update; after a crash or power loss in the middle of a prepare, finishing its
 * rollback; after a kexec that never happened (a failed REBOOT callback made
 * systemd cold-reboot), recording the failure and bringing the services back.
 * Running it twice changes nothing the second time.
 *
 * @module
 */

import { PHASES } from "../config/mod.ts";
import { ownershipStoreFor, undoReconcile } from "../devices/mod.ts";
import { describeError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import { type Kernel, KernelUnsupportedError } from "../kernel/mod.ts";
import { planPhase, type SystemdManager } from "../systemd/mod.ts";
import { ATTEMPT_SCHEMA, type AttemptRecord, newAttemptId } from "../store/mod.ts";
import type { UpdateContext } from "./context.ts";
import { finishUpdate } from "./finish.ts";
import { isMainline, mainlineBootState } from "./mainline_steps.ts";
import type { Plan } from "./plan.ts";
import { closeRecord, type FailureNote, noteFailure, saveRecord } from "./record.ts";
import { completeRollback, rollbackFinal, type RollbackNotes, runCancelPhase } from "./rollback.ts";
import { UpdateFailedError } from "./update_error.ts";

/** What `finish`/`recover` did. */
export interface Resolution {
  /** A short name of what was done ("nothing", "finished", "rolled-back", …). */
  action: string;
  message: string;
  exitCode: ExitCode;
  record?: AttemptRecord;
}

function emptyPlan(context: UpdateContext, backend: string): Plan {
  return {
    backend,
    target: { kernel: "", initrd: null, cmdline: "", release: null, luoVersion: null },
    running: { release: null, luoVersion: null, cmdline: "" },
    compat: { verdict: "unknown", sentence: "", allowed: false, override: false },
    devices: { supported: false, selected: [], ancestors: [], changes: [] },
    phases: PHASES.map((phase) => planPhase(context.config, phase)),
    kexecArgs: [],
    kexecWasLoaded: null,
    stopAtPrepared: false,
    issue: context.config.kexec.issue,
  };
}

function adoptedRecord(context: UpdateContext, backend: string): AttemptRecord {
  const now = context.clock.now().toISOString();
  return {
    schema: ATTEMPT_SCHEMA,
    id: newAttemptId(context.clock.now()),
    agent_version: context.agentVersion,
    backend,
    status: "kexec-issued",
    created: now,
    updated: now,
    kernels: {
      running: { release: null, luo_version: null },
      target: { release: null, luo_version: null },
    },
    compat: { verdict: "unknown", reason: "No record of the prepare.", override: false },
    plan: emptyPlan(context, backend) as unknown as Record<string, unknown>,
    steps: [],
    timings: { started: now },
    overrides: [],
    notes: { adopted: true },
  };
}

/** Sets unusable records aside; returns whether the newest record was one of them. */
async function setAsideUnusable(context: UpdateContext): Promise<string[]> {
  const { records, unreadable } = await context.store.list();
  // Refused attempts changed nothing: a damaged record older than one is still the
  // newest that may have been an update in progress.
  const newest = records.find((record) => record.status !== "refused")?.id ?? "";
  const aside: string[] = [];
  for (const bad of unreadable) {
    const name = bad.path.slice(bad.path.lastIndexOf("/") + 1).replace(/\.json$/, "");
    const moved = await context.store.setAside(bad.path);
    context.log.event(
      "record-unusable",
      `Attempt record "${bad.path}" cannot be used (${bad.problem}); moved it to "${moved}".`,
    );
    if (name > newest) aside.push(moved);
  }
  return aside;
}

/**
 * After the open attempt's record turned out unusable (set aside): without its
 * journal the agent cannot know exactly what the attempt changed, so it brings the
 * host to a safe state — the kernel cancelled if prepared, no kexec kernel loaded,
 * the devices the agent requested given back, phase "cancel" run so workloads come
 * back — and records that in a new attempt record (status "failed") naming the
 * units the operator should check.
 */
async function recoverWithoutRecord(
  context: UpdateContext,
  kernel: Kernel,
  state: string,
  lost: string[],
): Promise<Resolution> {
  const { log } = context;
  const done: string[] = [];
  const problems: string[] = [];
  if (kernel.stateMachine && state === "prepared") {
    try {
      await kernel.stateMachine.cancel();
      done.push("cancelled the kernel's prepare");
    } catch (error) {
      problems.push(`cancelling the kernel's prepare failed: ${describeError(error)}`);
    }
  }
  try {
    if (await context.kexec.isLoaded() !== false) {
      await context.kexec.unload();
      done.push("unloaded the kexec kernel");
    }
  } catch (error) {
    problems.push(`unloading the kexec kernel failed: ${describeError(error)}`);
  }
  // Only an update's request-devices step makes the agent request devices, and every
  // attempt that ends gives its requests back (rollback) or forgets them (finish):
  // with no attempt open, what the ownership record lists was that attempt's doing.
  if (kernel.devices) {
    const store = ownershipStoreFor(context.config, context.fs);
    try {
      const owned = await store.load();
      if (owned.size > 0) {
        await undoReconcile({
          kernel: kernel.devices,
          store,
          undo: {
            changes: [...owned].map(([path, device]) => ({
              path,
              id: device.id,
              from: false,
              to: true,
              reason: "selected" as const,
            })),
            ownedBefore: [],
          },
        });
        done.push(`gave back the agent's request of ${owned.size} device(s)`);
      }
    } catch (error) {
      problems.push(`giving back the requested devices failed: ${describeError(error)}`);
    }
  }
  const plan = emptyPlan(context, kernel.backend);
  try {
    const problem = await runCancelPhase(context, await context.systemd(), plan);
    if (problem) problems.push(`phase "cancel" failed: ${problem}`);
    else done.push('ran phase "cancel"');
  } catch (error) {
    problems.push(`phase "cancel" could not run: ${describeError(error)}`);
  }
  const check = plan.phases
    .filter((p) => p.phase === "prepare" || p.phase === "reboot")
    .flatMap((p) => [...p.stop, ...p.start]);
  const message = `The newest attempt record was unusable and was set aside (` +
    `${lost.join(", ")}); without its journal the agent cannot tell exactly what that attempt ` +
    `changed. It ${done.length ? done.join(", ") : "changed nothing"}` +
    (problems.length ? `; but ${problems.join("; ")}` : "") + ". Check the units of phases " +
    `"prepare" and "reboot"${check.length ? ` (${check.join(", ")})` : ""} and the devices ` +
    "('liveupdate-agent devices'); then a new update can start.";
  log.event("record-unusable", message);
  const record = adoptedRecord(context, kernel.backend);
  record.notes = {
    adopted: true,
    recovered_without_record: { set_aside: lost, done, problems },
  };
  noteFailure(record, "record", new Error(`The attempt record was unusable: ${lost.join(", ")}`));
  try {
    await context.store.ensure();
    await closeRecord(context, record, "failed", message, ExitCode.Failed);
  } catch (error) {
    log.error(`Could not record the recovery: ${describeError(error)}`);
  }
  return { action: "recovered-without-record", message, exitCode: ExitCode.Failed, record };
}

/**
 * Brings the host to a known state from the journal and the kernel's state.
 * `mode` "finish" is the boot unit's run; "recover" an operator's or the watcher's.
 */
export async function resolveUpdate(
  context: UpdateContext,
  mode: "finish" | "recover",
): Promise<Resolution> {
  const { log } = context;
  using _lock = context.lock();
  const lost = await setAsideUnusable(context);

  let kernel: Kernel | undefined;
  try {
    kernel = await context.openKernel();
  } catch (error) {
    if (!(error instanceof KernelUnsupportedError)) throw error;
    const open = await context.store.open();
    if (!open || open.status === "preparing" || open.status === "rolling-back") {
      if (open) {
        const message = `Attempt ${open.id} was interrupted and this kernel offers no live ` +
          `update (${error.message}); its record is closed as failed.`;
        await closeRecord(context, open, "failed", message, ExitCode.Failed);
        return { action: "failed", message, exitCode: ExitCode.Failed, record: open };
      }
      return {
        action: "nothing",
        message: `Nothing to ${mode}: ${error.message}`,
        exitCode: ExitCode.Success,
      };
    }
    const message = `The update ${open.id} did not happen: the kernel booted without a ` +
      `live-update interface (${error.message}).`;
    log.event("update-not-happened", message, { attempt: open.id });
    const manager = await context.systemd();
    const problem = await runCancelPhase(context, manager, open.plan as unknown as Plan);
    if (problem) open.notes.cancel_phase = problem;
    await closeRecord(context, open, "failed", message, ExitCode.Failed);
    return { action: "not-happened", message, exitCode: ExitCode.Failed, record: open };
  }

  const machine = kernel.stateMachine;
  const open = await context.store.open();
  // Mainline has no kernel state: the record and the handover decide (mainline_steps.ts).
  const finding = !machine && isMainline(kernel)
    ? await mainlineBootState(context, kernel.sessions, open)
    : undefined;
  const state = machine ? await machine.state() : finding?.state ?? "normal";
  if (finding && open) {
    log.info(`This boot, as the live update ${open.id} sees it: ${finding.reason}.`, {
      attempt: open.id,
    });
    open.notes.boot = { state: finding.state, reason: finding.reason };
  }

  if (lost.length > 0 && !open && state !== "updated") {
    return await recoverWithoutRecord(context, kernel, state, lost);
  }

  if (!open) {
    if (state === "updated") {
      const record = adoptedRecord(context, kernel.backend);
      log.event(
        "finished-without-record",
        "The kernel came up in state updated without a record of the prepare; finishing it.",
      );
      await context.store.ensure();
      await saveRecord(context, record);
      const manager = await context.systemd();
      await finishUpdate(context, kernel, record, manager);
      return {
        action: "finished",
        message: "Finished an update without a record.",
        exitCode: 0,
        record,
      };
    }
    if (state === "prepared") {
      return {
        action: "nothing",
        message: "The kernel is prepared, but not by this agent (no open attempt); leaving it. " +
          "Cancel it with 'liveupdate-agent cancel' if nobody else will.",
        exitCode: ExitCode.Success,
      };
    }
    return { action: "nothing", message: `Nothing to ${mode}.`, exitCode: ExitCode.Success };
  }

  const recordLog = log.with({ attempt: open.id });
  const flowContext = { ...context, log: recordLog };
  const plan = open.plan as unknown as Plan;
  const manager: SystemdManager = await context.systemd();

  const rollBack = async (
    why: string,
    fallback: RollbackNotes["final"],
    action?: string,
  ): Promise<Resolution> => {
    recordLog.event(fallback === "failed" ? "update-not-happened" : "recovered", why);
    const rolled = await completeRollback(
      flowContext,
      open,
      plan,
      kernel,
      manager,
      why,
      undefined,
      rollbackFinal(open, fallback),
    );
    return {
      action: rolled.status === "rolling-back" ? "rollback-incomplete" : action ?? rolled.status,
      message: rolled.message,
      exitCode: rolled.exitCode,
      record: open,
    };
  };

  switch (open.status) {
    case "preparing":
    case "rolling-back": {
      const failure = open.notes.failure as FailureNote | undefined;
      let why: string;
      if (failure) {
        why = `Attempt ${open.id} failed at step "${failure.step}" (${failure.error}); its ` +
          "rollback was interrupted or incomplete and is completed now.";
      } else {
        const last = open.steps.at(-1)?.name ?? "record";
        why = `Attempt ${open.id} was interrupted during step "${last}" (the agent was killed ` +
          "or the machine lost power).";
        noteFailure(open, last, new Error(why), { interrupted: true });
      }
      return await rollBack(why, "rolled-back");
    }
    case "prepared":
      if (state === "prepared") {
        return {
          action: "nothing",
          message: `Attempt ${open.id} is prepared and waits for the kexec or a cancel.`,
          exitCode: ExitCode.Success,
          record: open,
        };
      }
      if (state === "updated") break;
      {
        const why = finding
          ? `Attempt ${open.id} was prepared, but its sessions are not held any more: ` +
            `${finding.reason}.`
          : `Attempt ${open.id} was prepared, but the kernel is in state "${state}" ` +
            "now (the machine rebooted, or someone cancelled the kernel).";
        noteFailure(open, finding ? "prepare-sessions" : "prepare-kernel", new Error(why));
        return await rollBack(why, "failed", "failed");
      }
    case "kexec-issued":
      if (state === "updated") break;
      if (state === "prepared") {
        const why = finding
          ? `Attempt ${open.id} issued the kexec, but this is still the boot it was prepared ` +
            "in: the kexec did not start."
          : `Attempt ${open.id} issued the kexec, but this kernel is still prepared: ` +
            "the kexec did not start.";
        noteFailure(open, "kexec", new Error(why));
        return await rollBack(why, "rolled-back");
      }
      {
        const why = finding
          ? `The live update ${open.id} did not happen: the kexec was issued, but ` +
            `${finding.reason} (a cold boot, a kernel loaded with kexec_load, or a reboot(2) ` +
            "that failed to serialize the sessions), so the sessions were lost."
          : `The live update ${open.id} did not happen: the kexec was issued, but the ` +
            "kernel is in state normal (the kexec failed, or a REBOOT callback failed and the " +
            "machine was cold-rebooted, so the preserved devices were reset).";
        noteFailure(open, "kexec", new Error(why));
        return await rollBack(why, "failed", "not-happened");
      }
    case "finishing":
      break;
    default:
      return { action: "nothing", message: `Nothing to ${mode}.`, exitCode: ExitCode.Success };
  }

  try {
    await finishUpdate(flowContext, kernel, open, manager);
    return {
      action: "finished",
      message: open.outcome?.message ?? "Finished.",
      exitCode: ExitCode.Success,
      record: open,
    };
  } catch (error) {
    if (error instanceof UpdateFailedError) {
      return {
        action: "finished-with-errors",
        message: error.message,
        exitCode: error.exitCode,
        record: open,
      };
    }
    throw new UpdateFailedError(`Finishing attempt ${open.id} failed: ${describeError(error)}`, {
      cause: error,
    });
  }
}

/**
 * The steps of a prepare, each with what its undo needs: request the devices the
 * udev rules choose, load the target kernel, run phase "prepare", prepare the
 * kernel, run phase "reboot". A later step failing undoes these in reverse.
 *
 * @module
 */

import {
  applyDeviceSelection,
  DeviceRefusedError,
  type DeviceUndo,
  ownershipStoreFor,
  undoReconcile,
} from "../devices/mod.ts";
import type { DeviceKernel, Kernel, StateMachine } from "../kernel/mod.ts";
import {
  isActive,
  type PhaseChanges,
  PhaseError,
  runPhase,
  type SystemdManager,
  undoChanges,
} from "../systemd/mod.ts";
import type { UpdateContext } from "./context.ts";
import { fleetUndoSteps } from "./fleet_steps.ts";
import { isMainline, sessionsStep } from "./mainline_steps.ts";
import type { Plan, PlannedPhase } from "./plan.ts";
import type { Step } from "./steps.ts";

/** What the device step reports (JSON). */
export interface DeviceStepResult {
  requested: number;
  alreadyRequested: number;
  cleared: number;
  foreign: number;
  undo: DeviceUndo;
}

/** Requests the selected devices; undo restores every `requested` flag and the record. */
export function deviceStep(
  context: UpdateContext,
  plan: Plan,
  devices: DeviceKernel,
): Step<DeviceUndo, DeviceStepResult> {
  const { config, log } = context;
  const layer = context.deviceLayer(devices);
  const store = ownershipStoreFor(config, context.fs);
  return {
    name: "request-devices",
    async snapshot() {
      const owned = await store.load();
      return {
        changes: plan.devices.changes.map((change) => ({
          ...change,
          reason: change.to ? "selected" as const : "deselected" as const,
        })),
        ownedBefore: [...owned].map(([path, device]) => ({ path, ...device })),
      };
    },
    async run() {
      try {
        const result = await applyDeviceSelection(config, layer);
        log.event(
          "devices-requested",
          `Requested ${result.requested.length} device(s) for preservation ` +
            `(${result.alreadyRequested.length} already requested, ${result.cleared.length} cleared).`,
          { count: result.requested.length + result.alreadyRequested.length },
        );
        return {
          requested: result.requested.length,
          alreadyRequested: result.alreadyRequested.length,
          cleared: result.cleared.length,
          foreign: result.foreign.length,
          undo: result.undo,
        };
      } catch (error) {
        if (error instanceof DeviceRefusedError) {
          for (const refusal of error.refusals.slice(0, 20)) {
            log.event("device-refused", refusal.message, { device: refusal.path });
          }
        }
        throw error;
      }
    },
    async undo(snapshot, result) {
      await undoReconcile({ kernel: devices, store, undo: result?.undo ?? snapshot });
    },
  };
}

/** Loads the target kernel; undo unloads it. */
export function loadStep(context: UpdateContext, plan: Plan): Step<{ wasLoaded: boolean | null }> {
  return {
    name: "load-kernel",
    snapshot: async () => ({ wasLoaded: (await context.kexec.isLoaded()) ?? null }),
    async run() {
      const { target } = plan;
      await context.kexec.load({
        kernel: target.kernel,
        ...(target.initrd ? { initrd: target.initrd } : {}),
        cmdline: target.cmdline,
      });
      context.log.event("kexec-loaded", `Loaded "${target.kernel}" for the kexec.`, {
        kernel: target.kernel,
        cmdline: target.cmdline,
      });
      return { loaded: target.kernel };
    },
    async undo() {
      await context.kexec.unload();
    },
  };
}

/** What a phase step reports (JSON). */
export interface PhaseStepResult {
  changes: PhaseChanges;
  /** Units whose outcome the phase could not learn (the bus went away). */
  uncertain?: string[];
  jobs?: number;
  durationMs?: number;
}

/** Unit name → ActiveState before the phase. */
export type UnitSnapshot = Record<string, string>;

/** What changed since `before`: units active then and not now, inactive then and active now. */
export async function changesSince(
  manager: SystemdManager,
  before: UnitSnapshot,
): Promise<PhaseChanges> {
  const now = await manager.unitStatuses(Object.keys(before));
  const stopped: string[] = [];
  const started: string[] = [];
  for (const status of now) {
    const was = before[status.name];
    if (was === undefined) continue;
    if (isActive(was) && !isActive(status.activeState)) stopped.push(status.name);
    if (!isActive(was) && isActive(status.activeState)) started.push(status.name);
  }
  return { stopped, started };
}

/** The union of two sets of changes (a unit in both lists of either is left as `a` says). */
function mergeChanges(a: PhaseChanges, b: PhaseChanges): PhaseChanges {
  const stopped = new Set(a.stopped);
  const started = new Set(a.started);
  for (const unit of b.stopped) if (!started.has(unit)) stopped.add(unit);
  for (const unit of b.started) if (!stopped.has(unit)) started.add(unit);
  return { stopped: [...stopped], started: [...started] };
}

/**
 * Runs a phase's units; undo reverses what it changed: what the phase reported,
 * plus every unit of the snapshot whose state differs now (a phase interrupted by a
 * crash, or one that lost the bus, reports nothing or only part).
 */
export function phaseStep(
  context: UpdateContext,
  manager: SystemdManager,
  phase: PlannedPhase,
  signal?: AbortSignal,
): Step<UnitSnapshot, PhaseStepResult> {
  const phaseContext = { manager, log: context.log, clock: context.clock };
  return {
    name: `phase-${phase.phase}`,
    async snapshot() {
      const names = [...new Set([...phase.stop, ...phase.start, phase.target])];
      const statuses = await manager.unitStatuses(names);
      return Object.fromEntries(statuses.map((status) => [status.name, status.activeState]));
    },
    async run() {
      try {
        const report = await runPhase({ ...phaseContext, ...(signal ? { signal } : {}) }, phase);
        context.log.event("phase-done", `Phase "${phase.phase}" done.`, {
          phase: phase.phase,
          stopped: report.changes.stopped.length,
          started: report.changes.started.length,
        });
        return { changes: report.changes, jobs: report.jobs.length, durationMs: report.durationMs };
      } catch (error) {
        if (error instanceof PhaseError) {
          for (const failure of error.failures) {
            context.log.event(
              "unit-failed",
              `Unit "${failure.unit}" ${failure.type} job: ${failure.result}` +
                (failure.unitResult ? ` (${failure.unitResult})` : "") + ".",
              { unit: failure.unit, phase: phase.phase },
            );
          }
          const partialResult: PhaseStepResult = { changes: error.changes };
          if (error.uncertain.length > 0) partialResult.uncertain = [...error.uncertain];
          throw Object.assign(error, { partialResult });
        }
        throw error;
      }
    },
    async undo(snapshot, result) {
      const since = await changesSince(manager, snapshot);
      const changes = result?.changes ? mergeChanges(result.changes, since) : since;
      await undoChanges(phaseContext, changes, phase.timeoutMs);
    },
  };
}

/** Prepares the kernel (normal → prepared); undo cancels it if it is prepared. */
export function kernelPrepareStep(context: UpdateContext, machine: StateMachine): Step {
  return {
    name: "prepare-kernel",
    async run() {
      await machine.prepare();
      context.log.event("kernel-prepared", "The kernel is prepared for the live update.");
      return { state: "prepared" };
    },
    async undo() {
      if (await machine.state() === "prepared") await machine.cancel();
    },
  };
}

/**
 * Every step of a prepare, in order, for this kernel. `signal` (SIGTERM) stops a
 * phase that is waiting for its units.
 */
export function prepareSteps(
  context: UpdateContext,
  plan: Plan,
  kernel: Kernel,
  manager: SystemdManager,
  signal?: AbortSignal,
): Step[] {
  const phase = (name: string) => plan.phases.find((p) => p.phase === name)!;
  const steps: Step[] = [];
  if (kernel.devices) steps.push(deviceStep(context, plan, kernel.devices) as Step);
  steps.push(loadStep(context, plan) as Step);
  steps.push(phaseStep(context, manager, phase("prepare"), signal) as Step);
  if (kernel.stateMachine) steps.push(kernelPrepareStep(context, kernel.stateMachine));
  // Mainline: the barrier of the session broker's clients, in place of the kernel's prepare.
  else if (isMainline(kernel)) steps.push(sessionsStep(context) as Step);
  steps.push(phaseStep(context, manager, phase("reboot"), signal) as Step);
  return steps;
}

/**
 * The same steps, by name, for undoing a journal (recover, cancel): built without
 * a plan where a step needs none.
 */
export function undoableSteps(
  context: UpdateContext,
  plan: Plan,
  kernel: Kernel,
  manager: SystemdManager,
): Map<string, Step> {
  const steps = [...prepareSteps(context, plan, kernel, manager), ...fleetUndoSteps()];
  return new Map(steps.map((step) => [step.name, step]));
}

/**
 * A full live update rehearsed on the simulated machine (`liveupdate-agent demo`):
 * the sample hypervisor host is set up (simulated kernel, private systemd manager,
 * VMs running on passthrough devices), then the agent's own commands run against
 * it exactly as the units run them — `check`, `prepare` (which issues the kexec
 * through `kexec.issue = "command"`: the simulated reboot), and `finish` in the
 * "new kernel" — while the rehearsal plays the kernel's drivers (re-attaching
 * devices at boot and when a VM asks for its device) and shows every step as it
 * happens, from the agent's journal of steps (the attempt record), its log and the
 * workload's log. It ends with `status` and the record, as an operator reads them.
 *
 * @module
 */

import { describeStep } from "../cli/attempts_view.ts";
import { AgentError, describeError } from "../errors.ts";
import type { AttemptRecord } from "../store/mod.ts";
import { followLines, followRecord } from "./follow.ts";
import { formatSeconds, type Progress, type Task } from "./progress.ts";
import { serveReclaims } from "./reclaim_channel.ts";
import {
  SAMPLE_HOOKED_UNITS,
  SAMPLE_VMS,
  sampleConfig,
  sampleFiles,
  sampleTree,
  sampleUnits,
} from "./sample_host.ts";
import { type Stage, startStage } from "./stage.ts";
import type { SimTree } from "./tree.ts";

/** One record of the agent's JSON log. */
export interface AgentLogLine {
  level: string;
  message: string;
  event?: string;
  [field: string]: unknown;
}

/** What a run of an agent command left. */
export interface AgentRun {
  code: number;
  stdout: string;
}

/**
 * Runs the agent with `argv` (the rehearsal adds `--config-root` and the JSON log
 * format), passing every log record to `log` as it is written.
 */
export type RunAgent = (argv: string[], log: (line: AgentLogLine) => void) => Promise<AgentRun>;

/** Options of {@link rehearse}. */
export interface RehearsalOptions {
  /** The simulator binary. */
  simulator: string;
  /** The agent's phase targets (file name → contents). */
  phaseTargets: Record<string, string>;
  runAgent: RunAgent;
  progress: Progress;
  /** Milliseconds from an arbitrary origin. */
  now: () => number;
  /** Keep the stage's directory (configuration, records, metrics, logs) afterwards. */
  keep?: boolean;
  /** Called once the stage exists, with a function that tears it down (for signals). */
  started?: (stop: () => Promise<void>) => void;
}

/** What a rehearsal produced. */
export interface RehearsalResult {
  record: AttemptRecord;
  /** `liveupdate-agent status` after the update, as text. */
  status: string;
  /** `liveupdate-agent history ID`: the record as text. */
  history: string;
  /** The stage's directory, when kept. */
  kept?: string;
  durationMs: number;
  /** The metrics file the agent wrote, as text ("" if none). */
  metrics: string;
}

/** The rehearsal failed; the message says where. */
export class RehearsalError extends AgentError {
  override name = "RehearsalError";
}

/**
 * Shows the steps of the newest record as they are journaled; with `kexec`, also
 * the kexec once the record says it was issued.
 */
function stepTracker(progress: Progress, options: { kexec?: boolean } = {}) {
  const tasks = new Map<string, Task>();
  const ended = new Set<string>();
  let status = "";
  let kexec: Task | undefined;
  return {
    update(record: AttemptRecord) {
      record.steps.forEach((entry, index) => {
        const key = `${index}:${entry.name}`;
        if (ended.has(key)) {
          if (entry.status !== "undoing" && entry.status !== "undone") return;
        }
        if (entry.status === "undoing" || entry.status === "undone") {
          const undoKey = `${key}:undo`;
          if (ended.has(undoKey)) return;
          let task = tasks.get(undoKey);
          if (!task) {
            task = progress.begin(`undo ${entry.name}`);
            tasks.set(undoKey, task);
          }
          if (entry.status === "undone") {
            task.end("undone");
            ended.add(undoKey);
          }
          return;
        }
        let task = tasks.get(key);
        if (!task) {
          task = progress.begin(entry.name);
          tasks.set(key, task);
        }
        if (entry.status === "done") {
          task.end("done", describeStep(entry.name, entry.result));
          ended.add(key);
        } else if (entry.status === "failed" || entry.status === "undo-failed") {
          task.end("failed", entry.error ?? "failed");
          ended.add(key);
        }
      });
      if (record.status !== status) {
        status = record.status;
        if (status === "kexec-issued" && options.kexec && !kexec) {
          kexec = progress.begin("kexec", "issued");
        }
      }
    },
    /** The kexec task, if the record reached "kexec-issued". */
    kexec: () => kexec,
    /** Ends whatever is still running as failed. */
    abandon() {
      for (const [key, task] of tasks) if (!ended.has(key)) task.end("failed", "did not end");
    },
  };
}

async function readFlag(stage: Stage, path: string, flag: string): Promise<boolean> {
  return (await Deno.readTextFile(stage.sim.device(path, `liveupdate/${flag}`))).trim() === "1";
}

/**
 * Runs the rehearsal. Throws {@link RehearsalError} when a step fails; the stage
 * is torn down in any case. Needs root and `--allow-all` in practice.
 */
export async function rehearse(options: RehearsalOptions): Promise<RehearsalResult> {
  const { progress, runAgent, now } = options;
  const begun = now();
  const tree: SimTree = sampleTree();
  const machine = progress.begin("machine", "starting the simulated kernel and systemd");
  let stage: Stage;
  try {
    stage = await startStage({
      simulator: options.simulator,
      tree,
      units: (dir) => ({ ...options.phaseTargets, ...sampleUnits(dir) }),
      files: sampleFiles,
      config: sampleConfig(),
      prefix: "liveupdate-demo",
      handover: true,
    });
  } catch (error) {
    machine.end("failed", describeError(error));
    throw new RehearsalError(`The rehearsal's machine did not start: ${describeError(error)}`, {
      cause: error,
    });
  }
  options.started?.(() => stage.stop({ keepDir: options.keep }));
  machine.end(
    "done",
    `luo-sim (LUO RFC v1) with ${tree.devices.length} devices; private systemd manager`,
  );
  progress.note(`kernel ${stage.runningRelease}, target ${stage.targetRelease} (LUO ABI 1.0)`);
  progress.note(`config root ${stage.configRoot}`);

  const agentLog = (line: AgentLogLine) => {
    if (line.level === "warning" || line.level === "error") {
      progress.note(`agent ${line.level}: ${line.message}`);
    }
  };
  const run = async (argv: string[]): Promise<AgentRun> =>
    await runAgent([...argv, `--config-root=${stage.configRoot}`], agentLog);
  const workload = followLines(`${stage.dir}/workload.log`, (line) => progress.note(line));
  let latest: AttemptRecord | undefined;
  /** The newest record seen (read through a call: the followers change it). */
  const current = (): AttemptRecord | undefined => latest;
  try {
    const hook = progress.begin("hook services");
    const enabled = await stage.systemd.systemctl(["enable", ...SAMPLE_HOOKED_UNITS]);
    if (enabled.code !== 0) {
      hook.end("failed", enabled.stderr.trim());
      throw new RehearsalError(`systemctl enable failed: ${enabled.stderr.trim()}`);
    }
    hook.end(
      "done",
      "vm-checkpoint → liveupdate-prepare.target, vm-restore → liveupdate-updated.target",
    );
    const vms = SAMPLE_VMS.map((vm) => vm.unit);
    const start = progress.begin("workload", `starting ${vms.join(", ")}`);
    const started = await stage.systemd.systemctl(["start", ...vms]);
    if (started.code !== 0) {
      start.end("failed", started.stderr.trim());
      throw new RehearsalError(`systemctl start failed: ${started.stderr.trim()}`);
    }
    start.end("done", `${vms.join(", ")} running, each on a passthrough device`);

    progress.section("liveupdate-agent check", "preflight and plan; changes nothing");
    const preflight = progress.begin("preflight");
    const check = await run(["check", "--json"]);
    let plan: {
      ok?: boolean;
      plan?: { devices?: { selected?: unknown[]; ancestors?: unknown[] } };
    };
    try {
      plan = JSON.parse(check.stdout);
    } catch {
      plan = {};
    }
    if (check.code !== 0 || plan.ok !== true) {
      preflight.end("failed", `exit ${check.code}`);
      throw new RehearsalError(`'liveupdate-agent check' refused (exit ${check.code}).`);
    }
    preflight.end(
      "done",
      `prepare would go ahead: ${plan.plan?.devices?.selected?.length ?? 0} device(s) selected, ` +
        `${plan.plan?.devices?.ancestors?.length ?? 0} ancestor(s) preserved with them`,
    );

    progress.section("liveupdate-agent prepare", "what liveupdate-prepare.service runs");
    const before = stepTracker(progress, { kexec: true });
    const watchPrepare = followRecord(stage.stateDir, (r) => {
      latest = r;
      before.update(r);
    });
    const prepared = await run(["prepare"]).finally(() => watchPrepare.stop());
    const record = current();
    if (prepared.code !== 0 || record?.status !== "kexec-issued") {
      before.abandon();
      throw new RehearsalError(
        `'liveupdate-agent prepare' ended with exit code ${prepared.code}` +
          (record ? ` (attempt ${record.id}: ${record.outcome?.message ?? record.status})` : "") +
          ".",
      );
    }
    const state = (await Deno.readTextFile(stage.sim.path("kernel/liveupdate/state"))).trim();
    let preserved = 0;
    for (const device of tree.devices) {
      if (await readFlag(stage, device.path, "preserved")) preserved++;
    }
    const kexec = before.kexec() ?? progress.begin("kexec");
    if (state !== "updated") {
      kexec.end("failed", `the simulated kernel came back in state ${state}`);
      throw new RehearsalError(`After the kexec the kernel is in state "${state}", not "updated".`);
    }
    kexec.end("done", `simulated reboot: state updated, ${preserved} device(s) preserved`);

    progress.section(`new kernel ${stage.targetRelease}`, "the blackout is over");
    const boot = progress.begin("boot");
    const atBoot: string[] = [];
    for (const device of tree.devices) {
      if (device.driver === "vfio-pci") continue;
      if (!await readFlag(stage, device.path, "preserved")) continue;
      await stage.sim.setReclaimed(device.path);
      atBoot.push(device.path.slice(device.path.lastIndexOf("/") + 1));
    }
    boot.end(
      "done",
      atBoot.length
        ? `drivers re-attached ${atBoot.join(", ")}; the VMs' devices wait for their VMM`
        : "nothing to re-attach",
    );

    progress.section("liveupdate-agent finish", "what liveupdate-finish.service runs at boot");
    const channel = serveReclaims(`${stage.dir}/reclaim`, stage.sim, (served) => {
      const name = served.device.slice(served.device.lastIndexOf("/") + 1);
      progress.note(
        served.problem
          ? `kernel: re-attaching ${name} for VM ${served.vm} failed: ${served.problem}`
          : `kernel: ${name} re-attached for VM ${served.vm} (reclaimed)`,
      );
    });
    const after = stepTracker(progress);
    const prepareSteps = record.steps.length;
    const watchFinish = followRecord(stage.stateDir, (r) => {
      latest = r;
      after.update({ ...r, steps: r.steps.slice(prepareSteps) });
    });
    const finished = await run(["finish"]).finally(async () => {
      await watchFinish.stop();
      await channel.stop();
    });
    const done = current() ?? record;
    if (finished.code !== 0 || done.status !== "succeeded") {
      after.abandon();
      throw new RehearsalError(
        `'liveupdate-agent finish' ended with exit code ${finished.code} (attempt ${done.id}: ` +
          `${done.outcome?.message ?? done.status}).`,
      );
    }
    await workload.stop();
    const durationMs = now() - begun;
    progress.print(
      `\n✓ Live update ${done.id} succeeded: ${stage.runningRelease} → ` +
        `${stage.targetRelease}, rehearsed in ${formatSeconds(durationMs)}.`,
    );
    const status = await run(["status"]);
    const history = await run(["history", done.id]);
    let metrics = "";
    try {
      metrics = await Deno.readTextFile(stage.metricsFile);
    } catch {
      // no metrics written: the caller reports it
    }
    return {
      record: done,
      status: status.stdout,
      history: history.stdout,
      durationMs,
      metrics,
      ...(options.keep ? { kept: stage.dir } : {}),
    };
  } finally {
    await workload.stop();
    await stage.stop({ keepDir: options.keep });
  }
}

/**
 * Preflight: every check an update needs, with no side effects — the kernel
 * offers live update and is in state normal, no other attempt is open, the target
 * kernel and initrd are readable, its command line keeps `liveupdate` and `kho`
 * on, the two kernels are compatible, the device selection is valid, every phase
 * unit exists, kexec-tools is there. Returns the plan, or every problem found.
 *
 * @module
 */

import type { CompatReport } from "../compat/mod.ts";
import { formatLuoVersion } from "../compat/mod.ts";
import { PHASES } from "../config/mod.ts";
import {
  applyDeviceSelection,
  DeviceStateError,
  SelectionError,
  selectionFor,
  UDEV_SETTLE_TIMEOUT_MS,
  udevQueueFile,
  waitForUdevQueue,
} from "../devices/mod.ts";
import { describeError } from "../errors.ts";
import { liveUpdateCmdlineProblems, targetCmdline } from "../kexec/mod.ts";
import type { Kernel } from "../kernel/mod.ts";
import { checkPhases, planPhase, UnitPreflightError } from "../systemd/mod.ts";
import type { UpdateContext } from "./context.ts";
import { isMainline, mainlinePreflight } from "./mainline_steps.ts";
import type { Plan, PlannedDevice } from "./plan.ts";
import type { PreflightProblem } from "./update_error.ts";

/** Options of a prepare, as the command line gives them. */
export interface PrepareOptions {
  /** Stop at state prepared, without issuing the kexec. */
  stopAtPrepared?: boolean;
  /** Allow an unknown LUO version for this attempt (recorded as an override). */
  allowUnknownVersion?: boolean;
}

/** What preflight found. */
export interface PreflightResult {
  /** The plan, when there is no problem; partial otherwise (for `check`). */
  plan: Plan;
  problems: PreflightProblem[];
  /** Overrides the plan relies on, each a sentence (recorded with the attempt). */
  overrides: string[];
  /** The kernel, when it could be opened. */
  kernel?: Kernel;
  compat?: CompatReport;
}

async function readable(context: UpdateContext, path: string): Promise<string | undefined> {
  try {
    const info = await context.fs.stat(path);
    if (!info.isFile) return "it is not a regular file";
    using file = await context.fs.open(path, { read: true });
    await file.read(new Uint8Array(1));
    return undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "it does not exist";
    if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
    return describeError(error);
  }
}

async function executable(context: UpdateContext, path: string): Promise<boolean> {
  try {
    const info = await context.fs.stat(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Runs every preflight check. Never changes anything on the host; reads the
 * kernel's files, the udev database, systemd's unit states, the target image and
 * the records.
 */
export async function preflight(
  context: UpdateContext,
  options: PrepareOptions = {},
): Promise<PreflightResult> {
  const { config } = context;
  const problems: PreflightProblem[] = [];
  const overrides: string[] = [];
  const problem = (check: string, message: string) => problems.push({ check, message });

  const plan: Plan = {
    backend: "unknown",
    target: {
      kernel: config.target.kernel,
      initrd: config.target.initrd === "" ? null : config.target.initrd,
      cmdline: "",
      release: null,
      luoVersion: null,
    },
    running: { release: null, luoVersion: null, cmdline: "" },
    compat: { verdict: "unknown", sentence: "", allowed: false, override: false },
    devices: { supported: false, selected: [], ancestors: [], changes: [] },
    phases: [],
    kexecArgs: [],
    kexecWasLoaded: null,
    stopAtPrepared: options.stopAtPrepared ?? false,
    issue: config.kexec.issue,
  };

  // The kernel.
  let kernel: Kernel | undefined;
  try {
    kernel = await context.openKernel();
    plan.backend = kernel.backend;
    if (kernel.stateMachine) {
      const state = await kernel.stateMachine.state();
      if (state !== "normal") {
        problem(
          "kernel",
          `The kernel's live-update state is "${state}", not "normal": ` +
            (state === "prepared"
              ? "an update is already prepared; cancel it ('liveupdate-agent cancel') or finish it."
              : "the last update is not finished; run 'liveupdate-agent finish'."),
        );
      }
    }
  } catch (error) {
    problem("kernel", describeError(error));
  }

  // No other attempt open, and no damaged record that might be one.
  try {
    const open = await context.store.open();
    if (open) {
      problem(
        "record",
        `Attempt ${open.id} is still "${open.status}"; run 'liveupdate-agent recover' (or ` +
          "'liveupdate-agent cancel') to end it first.",
      );
    }
    const { records, unreadable } = await context.store.list();
    const newestRecord = records.find((record) => record.status !== "refused");
    const newest = newestRecord ? context.store.pathOf(newestRecord.id) : "";
    for (const bad of unreadable) {
      if (bad.path <= newest) continue;
      problem(
        "record",
        `The newest attempt record "${bad.path}" cannot be used (${bad.problem}); it may be an ` +
          "update that is still open. Run 'liveupdate-agent recover', which sets it aside and " +
          "brings the host to a known state.",
      );
    }
  } catch (error) {
    problem("record", describeError(error));
  }

  // The target kernel, initrd and kexec-tools.
  if (config.target.kernel === "") {
    problem(
      "target",
      "No target kernel is configured; set target.kernel to the image to update into.",
    );
  } else {
    const why = await readable(context, config.target.kernel);
    if (why) {
      problem("target", `The target kernel "${config.target.kernel}" cannot be read: ${why}.`);
    }
  }
  if (config.target.initrd !== "") {
    const why = await readable(context, config.target.initrd);
    if (why) {
      problem("target", `The target initrd "${config.target.initrd}" cannot be read: ${why}.`);
    }
  }
  if (!await executable(context, config.kexec.binary)) {
    problem(
      "kexec",
      `kexec-tools' program "${config.kexec.binary}" is missing or not executable; install ` +
        "kexec-tools or set kexec.binary.",
    );
  }

  // The command line the target boots with.
  let running = "";
  try {
    running = context.facts.cmdline().trim();
  } catch (error) {
    if (config.target.cmdline === "") {
      problem(
        "cmdline",
        `The running kernel's command line cannot be read (${describeError(error)}); set ` +
          "target.cmdline.",
      );
    }
  }
  plan.running.cmdline = running;
  plan.target.cmdline = targetCmdline(running, config.target.cmdline, config.target.append);
  for (const message of liveUpdateCmdlineProblems(plan.target.cmdline)) problem("cmdline", message);
  if (config.target.kernel !== "") {
    plan.kexecArgs = context.kexec.loadArgs({
      kernel: config.target.kernel,
      ...(config.target.initrd ? { initrd: config.target.initrd } : {}),
      cmdline: plan.target.cmdline,
    });
  }
  plan.kexecWasLoaded = (await context.kexec.isLoaded()) ?? null;

  // Compatibility.
  let compat: CompatReport | undefined;
  try {
    compat = await context.compat(kernel);
    plan.running.release = compat.running.release;
    plan.running.luoVersion = compat.running.version
      ? formatLuoVersion(compat.running.version)
      : null;
    plan.target.release = compat.target.release;
    plan.target.luoVersion = compat.target.version ? formatLuoVersion(compat.target.version) : null;
    if (kernel && isMainline(kernel)) {
      plan.running.compatible = compat.running.compatible ?? null;
      plan.target.compatible = compat.target.compatible ?? null;
    }
    let { verdict } = compat;
    if (!verdict.allowed && verdict.outcome === "unknown" && options.allowUnknownVersion) {
      verdict = { ...verdict, allowed: true, override: true };
      overrides.push(
        "The LUO version of a kernel is unknown; allowed by --allow-unknown-version: " +
          verdict.sentence,
      );
    } else if (verdict.override) {
      overrides.push(`compat.allow_unknown: ${verdict.sentence}`);
    }
    plan.compat = {
      verdict: verdict.outcome,
      sentence: verdict.sentence,
      allowed: verdict.allowed,
      override: verdict.override,
    };
    if (!verdict.allowed) problem("compat", verdict.sentence);
  } catch (error) {
    problem("compat", describeError(error));
  }

  // Mainline: what would lose every session silently, and the session broker.
  if (kernel && isMainline(kernel)) {
    await mainlinePreflight(context, kernel.sessions, plan, problem);
  }

  // Devices.
  if (kernel) {
    try {
      // At boot the coldplug events may still be in udev's queue: its database is
      // complete once the queue is empty (as `udevadm settle` waits).
      if (!await waitForUdevQueue(context.deviceFs, config.paths.udev_db, context.clock)) {
        context.log.warning(
          `udev still has events queued ("${udevQueueFile(config.paths.udev_db)}" exists) ` +
            `after ${
              UDEV_SETTLE_TIMEOUT_MS / 1000
            } s; selecting devices from its database as it is.`,
        );
      }
      const selection = selectionFor(config, context.deviceFs);
      const selected: PlannedDevice[] = selection.devices.map((device) => ({
        path: device.path,
        id: device.id,
        ...(device.unit ? { unit: device.unit } : {}),
      }));
      for (const error of selection.errors) problem("devices", error.message);
      if (kernel.devices) {
        plan.devices.supported = true;
        plan.devices.selected = selected;
        plan.devices.ancestors = selection.ancestors.map((ancestor) => ancestor.path);
        if (selection.errors.length === 0) {
          const layer = context.deviceLayer(kernel.devices);
          const dry = await applyDeviceSelection(config, layer, { dryRun: true, selection });
          plan.devices.changes = [
            ...dry.requested.map((path) => ({ path, from: false, to: true })),
            ...dry.cleared.map((path) => ({ path, from: true, to: false })),
          ];
        }
      } else if (selected.length > 0) {
        problem(
          "devices",
          `The udev rules select ${selected.length} device(s) (tag "${config.devices.tag}"), but ` +
            `this kernel's live-update interface (${kernel.backend}) preserves no devices; remove ` +
            "the tag from the rules or update on a kernel with device preservation.",
        );
      }
    } catch (error) {
      if (error instanceof SelectionError || error instanceof DeviceStateError) {
        problem("devices", error.message);
      } else {
        problem("devices", describeError(error));
      }
    }
  }

  // Units of every phase (those of the new kernel's phases too: same system).
  plan.phases = PHASES.map((phase) => planPhase(config, phase));
  try {
    const manager = await context.systemd();
    await checkPhases(manager, plan.phases);
  } catch (error) {
    if (error instanceof UnitPreflightError) {
      for (const p of error.problems) {
        problem("units", `Unit "${p.unit}" (${p.source}) ${p.reason}.`);
      }
    } else {
      problem("units", describeError(error));
    }
  }

  return {
    plan,
    problems,
    overrides,
    ...(kernel ? { kernel } : {}),
    ...(compat ? { compat } : {}),
  };
}

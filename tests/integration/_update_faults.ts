/**
 * Helpers of the update flow's fault matrix: bringing one rig back to its baseline
 * between cases, reading everything "consistent" covers (kernel state, units,
 * `requested` flags, the kexec kernel, the lock) and asserting it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PHASES } from "../../agent/config/mod.ts";
import type { AttemptRecord } from "../../agent/store/mod.ts";
import { RUNNING_RELEASE, sampleUnits, smallTree, type UpdateRig } from "./_update_rig.ts";

/** The rig's sample services. */
export const SERVICES: readonly string[] = Object.keys(sampleUnits());
/** The phase targets. */
export const TARGETS: readonly string[] = PHASES.map((phase) => `liveupdate-${phase}.target`);
/** Every device of the rig's tree. */
export const DEVICES: readonly string[] = smallTree().devices.map((device) => device.path);
/** The running kernel's command line in the baseline. */
export const BASE_CMDLINE = "BOOT_IMAGE=/vmlinuz root=/dev/vda ro liveupdate=on kho=on\n";

/** Everything the matrix compares before and after a case. */
export interface HostState {
  kernel: string;
  units: Record<string, string>;
  requested: Record<string, boolean>;
  kexecLoaded: boolean;
  /** What the kexec stand-in was asked so far (not compared: it only grows). */
  kexecLog: string[];
  lockHeld: boolean;
}

/** Reads the host's state. */
export async function hostState(rig: UpdateRig): Promise<HostState> {
  const requested: Record<string, boolean> = {};
  for (const path of DEVICES) {
    requested[path] =
      (await Deno.readTextFile(rig.sim.device(path, "liveupdate/requested"))).trim() === "1";
  }
  return {
    kernel: (await rig.sim.status()).state,
    units: await rig.unitStates([...SERVICES, ...TARGETS]),
    requested,
    kexecLoaded: await rig.kexecLoaded(),
    kexecLog: await rig.kexecLog(),
    lockHeld: rig.lockHeld(),
  };
}

async function systemctl(rig: UpdateRig, args: string[]): Promise<void> {
  const result = await rig.systemd.systemctl(args);
  if (result.code !== 0) throw new Error(`systemctl ${args.join(" ")}: ${result.stderr}`);
}

/**
 * Puts the rig back to the baseline: kernel normal with no failure pending, no
 * device requested, only vmm.service running, no record, the kexec stand-in
 * answering loads, the default configuration, versions and command line. Returns
 * the baseline state.
 */
export async function resetRig(rig: UpdateRig): Promise<HostState> {
  await rig.sim.clearFailures();
  const state = (await rig.sim.status()).state;
  if (state === "prepared") {
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "0");
  } else if (state === "updated") {
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/finish"), "1");
  }
  for (const path of DEVICES) {
    const file = rig.sim.device(path, "liveupdate/requested");
    if ((await Deno.readTextFile(file)).trim() !== "0") await Deno.writeTextFile(file, "0");
  }
  for (const name of SERVICES) {
    await Deno.remove(`${rig.systemd.unitDir}/${name}.d`, { recursive: true }).catch(() => {});
  }
  await Deno.remove(`${rig.systemd.unitDir}/masked.service`).catch(() => {});
  await rig.systemd.reload();
  await systemctl(rig, ["stop", ...SERVICES, ...TARGETS]);
  await systemctl(rig, ["reset-failed"]);
  await rig.start("vmm.service");
  await Deno.remove(rig.stateDir, { recursive: true }).catch(() => {});
  await Deno.remove(`${rig.dir}/kexec.log`).catch(() => {});
  await Deno.remove(`${rig.dir}/kexec.loaded`).catch(() => {});
  await rig.setKexec({});
  await rig.setConfig("");
  await rig.setVersions("1.0", "1.0");
  await rig.setCmdline(BASE_CMDLINE);
  await Deno.writeTextFile(`${rig.proc}/sys/kernel/osrelease`, `${RUNNING_RELEASE}\n`);
  await Deno.writeTextFile(`${rig.proc}/uptime`, "1234.56 2000.00\n");
  const baseline = await hostState(rig);
  assert.equal(baseline.kernel, "normal");
  assert.equal(baseline.units["vmm.service"], "active");
  return baseline;
}

/** Options of {@link assertConsistent}. */
export interface ConsistentOptions {
  /** The kernel state expected (default: as before). */
  kernel?: string;
  /** Whether phase "cancel" ran (its target is then active; it marks where the host is). */
  cancelPhase?: boolean;
  /** Units that may be "failed" where they were "inactive" (the unit that made the update fail). */
  failed?: readonly string[];
  /** Units expected in a different state than before: name → ActiveState. */
  units?: Record<string, string>;
  /** `requested` flags expected to differ from before. */
  requested?: Record<string, boolean>;
  /** Whether a kexec kernel is expected loaded (default false). */
  kexecLoaded?: boolean;
}

/**
 * Asserts the host is consistent: the kernel state, every service's ActiveState and
 * every `requested` flag as before (save the stated exceptions), no kexec kernel
 * loaded, no lock held, and of the phase targets only "cancel" active (when that
 * phase ran).
 */
export async function assertConsistent(
  rig: UpdateRig,
  before: HostState,
  options: ConsistentOptions = {},
): Promise<HostState> {
  const after = await hostState(rig);
  assert.equal(after.kernel, options.kernel ?? before.kernel, "kernel state");
  assert.deepEqual(after.requested, { ...before.requested, ...options.requested }, "requested");
  assert.equal(after.kexecLoaded, options.kexecLoaded ?? false, "no kexec kernel is left loaded");
  assert.equal(after.lockHeld, false, "no lock is held");
  for (const name of SERVICES) {
    const expected = options.units?.[name] ?? before.units[name];
    const actual = after.units[name];
    if (options.failed?.includes(name) && expected === "inactive" && actual === "failed") continue;
    assert.equal(actual, expected, `ActiveState of ${name}`);
  }
  for (const name of TARGETS) {
    const expected = options.units?.[name] ??
      (name === "liveupdate-cancel.target" && options.cancelPhase ? "active" : before.units[name]);
    assert.equal(after.units[name], expected, `ActiveState of ${name}`);
  }
  return after;
}

/** The newest record, which must exist. */
export async function lastRecord(rig: UpdateRig): Promise<AttemptRecord> {
  const record = await rig.record();
  assert.ok(record, "an attempt record exists");
  return record;
}

/** What the record of a failed attempt must say. */
export interface RecordExpectation {
  status: string;
  message?: RegExp;
  /** The step that failed (notes.failure.step). */
  step?: string;
  /** Steps the rollback undid (notes.rollback.undone), in order. */
  undone?: string[];
}

/** Asserts the record's status, outcome, failing step and rollback notes. */
export function assertRecord(record: AttemptRecord, expected: RecordExpectation): void {
  assert.equal(record.status, expected.status, "record status");
  assert.equal(record.outcome?.result, expected.status, "outcome.result");
  if (expected.message) assert.match(record.outcome?.message ?? "", expected.message);
  if (expected.step) {
    const failure = record.notes.failure as { step?: string } | undefined;
    assert.equal(failure?.step, expected.step, "notes.failure.step");
  }
  if (expected.undone) {
    const rollback = record.notes.rollback as { undone?: string[]; failures?: unknown[] };
    assert.deepEqual(rollback?.undone, expected.undone, "notes.rollback.undone");
    assert.deepEqual(rollback?.failures, [], "notes.rollback.failures");
  }
}

/** The steps of a full prepare, in order. */
export const PREPARE_STEPS = [
  "request-devices",
  "load-kernel",
  "phase-prepare",
  "prepare-kernel",
  "phase-reboot",
] as const;

/** The steps a rollback undoes when `failed` failed (it and everything before, newest first). */
export function undoneThrough(failed: string): string[] {
  const index = PREPARE_STEPS.indexOf(failed as typeof PREPARE_STEPS[number]);
  return PREPARE_STEPS.slice(0, index + 1).reverse();
}

/** The case names the README's "Fault matrix" table lists (its first column). */
export async function readmeFaultCases(): Promise<Set<string>> {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const start = readme.indexOf("\n## Fault matrix");
  assert.ok(start >= 0, 'the README has a "Fault matrix" section');
  const end = readme.indexOf("\n## ", start + 1);
  const rows = readme.slice(start, end < 0 ? undefined : end).split("\n")
    .filter((line) => line.startsWith("| ") && !line.startsWith("| ---"));
  return new Set(rows.map((row) => row.slice(2, row.indexOf(" | ")).trim()));
}

/** Asserts the README's fault matrix lists every case of a test file. */
export async function assertListedInReadme(names: readonly string[]): Promise<void> {
  const listed = await readmeFaultCases();
  assert.deepEqual(names.filter((name) => !listed.has(name)), [], "cases missing in the README");
}

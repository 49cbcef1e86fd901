/**
 * The README's main-job command, `deno task demo`, run as the README runs it (with
 * `--json` so the record can be read back), and the same rehearsal on a terminal
 * (tmux), where the progress display redraws in place.
 */

import assert from "node:assert/strict";
import type { AttemptRecord } from "../../agent/store/mod.ts";
import { SAMPLE_VMS } from "../../agent/rehearsal/sample_host.ts";
import { assertDocument } from "../tools/assert_document.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("deno task demo rehearses a full live update and prints its record", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "demo", "--json"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = decoder.decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const record = assertDocument<AttemptRecord>("attempt", decoder.decode(output.stdout));

  assert.equal(record.status, "succeeded");
  assert.equal(record.outcome?.exit_code, 0);
  assert.equal(record.compat.verdict, "compatible");
  assert.deepEqual(
    record.steps.map((step) => [step.name, step.status]),
    [
      "request-devices",
      "load-kernel",
      "phase-prepare",
      "prepare-kernel",
      "phase-reboot",
      "verify",
      "phase-updated",
      "reclaim-devices",
      "finish-kernel",
      "phase-finish",
      "forget-devices",
    ].map((name) => [name, "done"]),
  );
  const result = (name: string) =>
    record.steps.find((step) => step.name === name)?.result as Record<string, unknown>;
  // Devices: both passthrough functions requested, preserved with their two ancestors,
  // and every one of them reclaimed in the new kernel.
  assert.equal(result("request-devices").requested, SAMPLE_VMS.length);
  assert.deepEqual(record.notes.devices, {
    selected: SAMPLE_VMS.length,
    preserved: SAMPLE_VMS.length + 2,
    reclaimed: SAMPLE_VMS.length + 2,
    unreclaimed: 0,
  });
  // Phases: the checkpoint ran in prepare (hooked into its target), the VMMs stopped
  // before the kexec, the restore and the VMMs came back in updated.
  const changes = (name: string) =>
    result(name).changes as { stopped: string[]; started: string[] };
  assert.ok(changes("phase-prepare").started.includes("vm-checkpoint.service"));
  assert.deepEqual(
    changes("phase-reboot").stopped.sort(),
    SAMPLE_VMS.map((vm) => vm.unit).sort(),
  );
  const updated = changes("phase-updated").started;
  for (const unit of ["vm-restore.service", ...SAMPLE_VMS.map((vm) => vm.unit)]) {
    assert.ok(updated.includes(unit), `${unit} started in phase updated`);
  }
  assert.equal(record.kernels.running.release, "6.19.0-lu-old");
  assert.equal(record.kernels.target.release, "6.19.1-lu-new");
  assert.equal((result("verify").problems as unknown[]).length, 0);

  // Progress went to standard error as plain lines (not a terminal), each step shown,
  // and the restore reclaimed the devices through the channel.
  for (const step of record.steps) assert.match(stderr, new RegExp(`✓ ${step.name} `));
  for (const vm of SAMPLE_VMS) {
    assert.match(
      stderr,
      new RegExp(`kernel: ${vm.device.split("/").at(-1)} re-attached for VM ${vm.name}`),
    );
    assert.match(stderr, new RegExp(`vm-restore: VM ${vm.name} resumed`));
  }
  assert.match(stderr, /\$ liveupdate-agent status\n/);
  assert.match(stderr, /\$ liveupdate-agent history /);
  // Nothing is left behind.
  const root = /config root (\/tmp\/liveupdate-demo-[^/\s]+)\/root/.exec(stderr)?.[1];
  assert.ok(root, "the demo names its directory");
  assert.equal(exists(root), false, `${root} was removed`);
});

Deno.test("on a terminal the demo redraws its progress in place (tmux)", async () => {
  const session = `liveupdate-operator-demo-${Deno.pid}`;
  const tmux = (...args: string[]) =>
    new Deno.Command("tmux", { args, stdout: "piped", stderr: "piped" }).output();
  const script = `${Deno.execPath()} run -A --cached-only ${ROOT}agent/main.ts demo; ` +
    "echo DEMO-EXIT=$?; sleep 600";
  const started = await tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "300", script);
  assert.equal(started.code, 0, decoder.decode(started.stderr));
  try {
    let screen = "";
    for (let i = 0; i < 1200 && !/DEMO-EXIT=\d+/.test(screen); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      screen = decoder.decode(
        (await tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session)).stdout,
      );
    }
    assert.match(screen, /DEMO-EXIT=0/, screen);
    // Live mode: no plain "▸ step" start lines; every step ends once, on one line, and
    // no spinner frame is left on the screen.
    assert.doesNotMatch(screen, /▸/);
    assert.doesNotMatch(screen, /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
    for (
      const step of ["request-devices", "phase-prepare", "kexec", "phase-updated", "forget-devices"]
    ) {
      const lines = screen.split("\n").filter((line) => new RegExp(`^  ✓ ${step} `).test(line));
      assert.equal(lines.length, 1, `${step}: ${lines.join(" | ")}`);
    }
    assert.match(screen, /✓ Live update \S+ succeeded/);
  } finally {
    await tmux("kill-session", "-t", session);
  }
});

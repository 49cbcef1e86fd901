/**
 * The agent as a process, killed: SIGKILL right after each journaled step of
 * prepare (through LIVEUPDATE_AGENT_CRASH_AT) and of finish, followed by
 * `liveupdate-agent recover` (twice: the second changes nothing); SIGTERM while a
 * phase waits for a slow unit; a second prepare while one runs; damaged records.
 * Every run is `liveupdate-agent` itself (`deno run -A agent/main.ts`) against the
 * rig; none may print a stack trace. The README's "Fault matrix" lists every case.
 */

import assert from "node:assert/strict";
import { ExitCode } from "../../agent/exit_codes.ts";
import { runPrepare } from "../../agent/update/mod.ts";
import {
  assertConsistent,
  assertListedInReadme,
  assertRecord,
  type HostState,
  hostState,
  lastRecord,
  PREPARE_STEPS,
  resetRig,
  undoneThrough,
} from "./_update_faults.ts";
import { SMALL, startUpdateRig, type UpdateRig } from "./_update_rig.ts";

const decoder = new TextDecoder();

interface AgentRun {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Runs `liveupdate-agent ARGS` against the rig and waits for it. */
async function agent(
  rig: UpdateRig,
  args: string[],
  env: Record<string, string> = {},
): Promise<AgentRun> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: rig.cliArgs(...args, "--log-format=text"),
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const run = {
    code: output.code,
    signal: output.signal,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
  assertNoStack(run);
  return run;
}

function assertNoStack(run: AgentRun): void {
  assert.doesNotMatch(run.stderr, /^ {4}at /m, `no stack trace in:\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /Unexpected internal error/, run.stderr);
}

function json(run: AgentRun): Record<string, unknown> {
  try {
    return JSON.parse(run.stdout);
  } catch {
    throw new Error(`Not JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `recover` a second time and asserts it changes nothing: host and records. */
async function recoverAgainChangesNothing(rig: UpdateRig): Promise<void> {
  const before = await hostState(rig);
  const records = await recordFiles(rig);
  const again = await agent(rig, ["recover", "--json"]);
  assert.equal(again.code, ExitCode.Success, again.stderr);
  assert.equal(json(again).action, "nothing");
  await assertConsistent(rig, before, { kexecLoaded: before.kexecLoaded });
  assert.deepEqual(await recordFiles(rig), records, "no record changed");
}

/** Every file of the state directory's attempts, with its contents. */
async function recordFiles(rig: UpdateRig): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  try {
    for await (const entry of Deno.readDir(`${rig.stateDir}/attempts`)) {
      files[entry.name] = await Deno.readTextFile(`${rig.stateDir}/attempts/${entry.name}`);
    }
  } catch {
    // no directory yet
  }
  return files;
}

/** Prepare, killed with SIGKILL right after the journal write `at`. */
async function prepareKilledAt(rig: UpdateRig, at: string): Promise<void> {
  const run = await agent(rig, ["prepare"], { LIVEUPDATE_AGENT_CRASH_AT: at });
  assert.equal(run.signal, "SIGKILL", `killed at ${at}: exit ${run.code}\n${run.stderr}`);
  assert.match(run.stderr, new RegExp(`LIVEUPDATE_AGENT_CRASH_AT=${at}`));
}

type Case = [name: string, run: (rig: UpdateRig, before: HostState) => Promise<void>];

const PREPARE_CRASHES: string[] = [
  ...PREPARE_STEPS.flatMap((step) => [`${step}:started`, `${step}:done`]),
  "kexec:started",
];

const CASES: Case[] = [
  ...PREPARE_CRASHES.map((at): Case => [
    `prepare killed (SIGKILL) at ${at}, then recover`,
    async (rig, before) => {
      await prepareKilledAt(rig, at);
      const [step, status] = at.split(":") as [string, string];
      const open = await lastRecord(rig);
      if (step === "kexec") {
        assert.equal(open.status, "kexec-issued");
        assert.equal((await rig.sim.status()).state, "prepared");
      } else {
        assert.equal(open.status, "preparing");
        assert.deepEqual(
          [open.steps.at(-1)?.name, open.steps.at(-1)?.status],
          [step, status],
        );
      }
      assert.equal(rig.lockHeld(), false, "the lock died with the agent");

      const recover = await agent(rig, ["recover", "--json"]);
      assert.equal(recover.code, ExitCode.RolledBack, recover.stderr);
      assert.equal(json(recover).action, "rolled-back");
      await assertConsistent(rig, before, { cancelPhase: true });
      const record = await lastRecord(rig);
      assertRecord(record, {
        status: "rolled-back",
        step: step === "kexec" ? "kexec" : step,
        message: step === "kexec"
          ? /issued the kexec, but this kernel is still prepared/
          : new RegExp(`interrupted during step "${step}"`),
        undone: step === "kexec" ? undoneThrough("phase-reboot") : undoneThrough(step),
      });
      if (step !== "kexec") {
        assert.equal((record.notes.failure as { interrupted?: boolean }).interrupted, true);
      }
      await recoverAgainChangesNothing(rig);
    },
  ]),
  ...["verify:done", "phase-updated:done", "finish-kernel:done"].map((at): Case => [
    `finish killed (SIGKILL) at ${at}, then recover completes the finish`,
    async (rig) => {
      const context = await rig.context();
      try {
        assert.equal((await runPrepare(context.update)).status, "kexec-issued");
      } finally {
        await context.close();
      }
      for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
      const finish = await agent(rig, ["finish"], { LIVEUPDATE_AGENT_CRASH_AT: at });
      assert.equal(finish.signal, "SIGKILL", finish.stderr);
      const open = await lastRecord(rig);
      assert.equal(open.status, "finishing");
      const expectedState = at === "finish-kernel:done" ? "normal" : "updated";
      assert.equal((await rig.sim.status()).state, expectedState);

      const recover = await agent(rig, ["recover", "--json"]);
      assert.equal(recover.code, ExitCode.Success, recover.stderr);
      assert.equal(json(recover).action, "finished");
      const record = await lastRecord(rig);
      assert.equal(record.status, "succeeded");
      assert.deepEqual(
        record.steps.slice(5).map((s) => [s.name, s.status]),
        ["verify", "phase-updated", "reclaim-devices", "finish-kernel", "phase-finish"]
          .concat("forget-devices").map((name) => [name, "done"]),
        "every finish step done once",
      );
      const after = await hostState(rig);
      assert.equal(after.kernel, "normal");
      assert.equal(after.kexecLoaded, false);
      assert.equal(after.lockHeld, false);
      assert.equal(after.units["vmm.service"], "active");
      assert.equal(after.units["restore.service"], "active");
      assert.equal(after.units["liveupdate-finish.target"], "active");
      await recoverAgainChangesNothing(rig);
    },
  ]),
  ...["prepare-kernel:undone", "phase-prepare:undoing"].map((at): Case => [
    `killed (SIGKILL) during the rollback at ${at}, then recover completes it`,
    async (rig, before) => {
      await rig.setConfig('[phases.reboot]\nstart = ["broken.service"]\n');
      await prepareKilledAt(rig, at);
      const open = await lastRecord(rig);
      assert.equal(open.status, "rolling-back");
      assert.equal((open.notes.failure as { step: string }).step, "phase-reboot");
      const recover = await agent(rig, ["recover", "--json"]);
      assert.equal(recover.code, ExitCode.RolledBack, recover.stderr);
      await assertConsistent(rig, before, { cancelPhase: true, failed: ["broken.service"] });
      const record = await lastRecord(rig);
      assertRecord(record, {
        status: "rolled-back",
        step: "phase-reboot",
        message: /failed at step "phase-reboot" .*broken\.service.*completed now/,
      });
      assert.ok(record.steps.every((s) => s.status === "undone"), "every step undone");
      await recoverAgainChangesNothing(rig);
    },
  ]),
  ["SIGTERM while a phase waits for a slow unit", async (rig, before) => {
    await rig.setConfig('[phases.prepare]\nstart = ["slow.service"]\ntimeout = "120s"\n');
    const child = new Deno.Command(Deno.execPath(), {
      args: rig.cliArgs("prepare", "--log-format=text"),
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    try {
      for (let i = 0;; i++) {
        if ((await rig.unitStates(["slow.service"]))["slow.service"] === "activating") break;
        if (i > 1200) throw new Error("slow.service never started");
        await sleep(50);
      }
      child.kill("SIGTERM");
    } finally {
      const result = await output;
      const run = {
        code: result.code,
        signal: result.signal,
        stdout: decoder.decode(result.stdout),
        stderr: decoder.decode(result.stderr),
      };
      assertNoStack(run);
      assert.equal(run.code, ExitCode.RolledBack, run.stderr);
      assert.match(run.stderr, /SIGTERM/);
    }
    await assertConsistent(rig, before, { cancelPhase: true, failed: ["slow.service"] });
    assertRecord(await lastRecord(rig), {
      status: "rolled-back",
      step: "phase-prepare",
      message: /phase-prepare.*stopped/,
      undone: undoneThrough("phase-prepare"),
    });
  }],
  ["a second prepare while one runs (exit 7)", async (rig, before) => {
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let paused!: () => void;
    const reached = new Promise<void>((r) => paused = r);
    const context = await rig.context({
      onJournal: async (step, status) => {
        if (step === "phase-prepare" && status === "started") {
          paused();
          await held;
        }
      },
    });
    try {
      const first = runPrepare(context.update, { stopAtPrepared: true });
      await reached;
      const second = await agent(rig, ["prepare"]);
      release();
      assert.equal(second.code, ExitCode.Busy, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(`Another live-update operation \\(pid ${Deno.pid}\\)`),
      );
      assert.equal((await first).status, "prepared");
    } finally {
      release();
      await context.close();
    }
    const cancel = await agent(rig, ["cancel", "--json"]);
    assert.equal(cancel.code, ExitCode.Success, cancel.stderr);
    assert.equal(json(cancel).action, "cancelled");
    await assertConsistent(rig, before, { cancelPhase: true });
  }],
  ...([
    ["truncated", (text: string) => text.slice(0, Math.floor(text.length / 2)), /not valid JSON/],
    ["garbage", () => "\u0000\u00ff#!garbage{{{", /not valid JSON/],
    ["of a wrong schema", (text: string) => text.replace('"schema": 1', '"schema": 99'), /schema/],
  ] as const).map(([how, damage, problem]): Case => [
    `the open attempt's record is ${how}: refused, then recover`,
    async (rig, before) => {
      await prepareKilledAt(rig, "phase-prepare:done");
      const open = await lastRecord(rig);
      const file = `${rig.stateDir}/attempts/${open.id}.json`;
      await Deno.writeTextFile(file, damage(await Deno.readTextFile(file)));

      // prepare refuses (the damaged record may be an open update), nothing changes.
      const during = await hostState(rig);
      const refused = await agent(rig, ["prepare"]);
      assert.equal(refused.code, ExitCode.Refused, refused.stderr);
      assert.match(refused.stderr, new RegExp(`${open.id}\\.json" cannot be used`));
      assert.match(refused.stderr, problem);
      assert.match(refused.stderr, /liveupdate-agent recover/);
      await assertConsistent(rig, during, { kexecLoaded: true });

      // status reports; it does not crash.
      const status = await agent(rig, ["status"]);
      assert.equal(status.code, ExitCode.Success, status.stderr);

      // recover sets the file aside and brings the host to a safe state.
      const recover = await agent(rig, ["recover", "--json"]);
      assert.equal(recover.code, ExitCode.Failed, recover.stderr);
      const resolution = json(recover);
      assert.equal(resolution.action, "recovered-without-record");
      assert.match(String(resolution.message), /unusable and was set aside/);
      assert.match(recover.stderr, new RegExp(`${open.id}\\.json\\.corrupt`));
      assert.match(recover.stderr, problem);
      await Deno.stat(`${file}.corrupt`);
      await assert.rejects(Deno.stat(file), Deno.errors.NotFound);
      // The kernel, the kexec kernel and the workloads (phase "cancel") are safe; what
      // phase "prepare" started is named for the operator to check.
      await assertConsistent(rig, before, {
        cancelPhase: true,
        units: { "checkpoint.service": "active" },
      });
      assert.match(String(resolution.message), /checkpoint\.service/);
      const record = await lastRecord(rig);
      assert.equal(record.status, "failed");
      await recoverAgainChangesNothing(rig);
      // A new update can start.
      const check = await agent(rig, ["check"]);
      assert.equal(check.code, ExitCode.Success, check.stdout + check.stderr);
    },
  ]),
  ["an older record in the history is damaged", async (rig, before) => {
    const prepared = await agent(rig, ["prepare", "--no-kexec"]);
    assert.equal(prepared.code, ExitCode.Success, prepared.stderr);
    const cancel = await agent(rig, ["cancel"]);
    assert.equal(cancel.code, ExitCode.Success, cancel.stderr);
    const old = `${rig.stateDir}/attempts/20200101T000000Z-000000.json`;
    await Deno.writeTextFile(old, '{"schema": 1, "id": ');
    const check = await agent(rig, ["check"]);
    assert.equal(check.code, ExitCode.Success, check.stdout + check.stderr);
    const recover = await agent(rig, ["recover", "--json"]);
    assert.equal(recover.code, ExitCode.Success, recover.stderr);
    assert.equal(json(recover).action, "nothing");
    assert.match(recover.stderr, /20200101T000000Z-000000\.json\.corrupt/);
    await Deno.stat(`${old}.corrupt`);
    await assertConsistent(rig, before, { cancelPhase: true });
  }],
];

Deno.test("killed agent, signals and damaged records", async (t) => {
  await using rig = await startUpdateRig();
  for (const [name, run] of CASES) {
    await t.step(name, async () => {
      const before = await resetRig(rig);
      await run(rig, before);
    });
  }
});

Deno.test("the README's fault matrix lists every case of this file", async () => {
  await assertListedInReadme(CASES.map(([name]) => name));
});

/**
 * The agent's systemd layer against a real systemd manager (the private harness).
 */
import assert from "node:assert/strict";
import { ExitCode } from "../../agent/exit_codes.ts";
import { createLogger, streamSink } from "../../agent/log/mod.ts";
import { loadConfig } from "../../agent/config/load.ts";
import { captureOutput, createTestHost, realClock } from "../../agent/host/mod.ts";
import { dbusNextConnector } from "../../agent/systemd/dbus_next.ts";
import {
  BusCallError,
  BusConnectError,
  BusDisconnectedError,
  connectSystemd,
  managerKexec,
  type PhaseContext,
  PhaseDisconnectedError,
  PhaseFailedError,
  type PhasePlan,
  phaseTarget,
  PhaseTimeoutError,
  runPhase,
  SystemdManager,
  undoChanges,
  UnitPreflightError,
} from "../../agent/systemd/mod.ts";
import { type PrivateSystemd, startPrivateSystemd } from "./harness.ts";
import { phaseTargetFiles, phaseTestUnits } from "./test_units.ts";

function context(manager: SystemdManager): PhaseContext {
  const log = createLogger({
    sink: streamSink(captureOutput(), "text"),
    clock: realClock,
    level: "debug",
  });
  return { manager, log, clock: realClock };
}

function plan(phase: PhasePlan["phase"], parts: Partial<PhasePlan> = {}): PhasePlan {
  return { phase, stop: [], start: [], target: phaseTarget(phase), timeoutMs: 60_000, ...parts };
}

async function states(systemd: PrivateSystemd, units: readonly string[]): Promise<string[]> {
  const result = await systemd.systemctl(["is-active", ...units]);
  return result.stdout.trim().split("\n");
}

async function withSystemd(
  units: Record<string, string>,
  body: (systemd: PrivateSystemd, manager: SystemdManager) => Promise<void>,
): Promise<void> {
  await using systemd = await startPrivateSystemd({
    units: { ...await phaseTargetFiles(), ...units },
  });
  await using manager = await SystemdManager.connect(dbusNextConnector, systemd.busAddress);
  await body(systemd, manager);
}

/** Awaits `promise`, asserts it rejects with an instance of `type`, returns the error. */
async function rejection<T extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => T,
): Promise<T> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected ${type.name}, but it resolved`);
}

const sorted = (list: readonly string[]) => [...list].sort();

Deno.test("a phase of 100 units (simple, oneshot, notify; half ordered) stops and starts, every job observed", async () => {
  const units = phaseTestUnits(100);
  await withSystemd(units.files, async (systemd, manager) => {
    assert.equal((await systemd.systemctl(["start", ...units.names])).code, 0);
    const ctx = context(manager);

    const prepare = await runPhase(ctx, plan("prepare", { stop: units.names }));
    assert.deepEqual(sorted(prepare.changes.stopped), sorted(units.names));
    assert.deepEqual(prepare.changes.started, ["liveupdate-prepare.target"]);
    for (const name of units.names) {
      const jobs = prepare.jobs.filter((job) => job.unit === name);
      assert.equal(jobs.length, 1, name);
      assert.equal(jobs[0]!.type, "stop");
      assert.equal(jobs[0]!.result, "done", name);
    }
    assert.deepEqual(new Set(await states(systemd, units.names)), new Set(["inactive"]));
    assert.equal(await systemd.property("liveupdate-prepare.target", "ActiveState"), "active");

    // A failed update undoes the phase: the units stopped in prepare come back.
    const back = await undoChanges(ctx, prepare.changes, 60_000);
    assert.deepEqual(sorted(back.changes.started), sorted(units.names));
    assert.deepEqual(back.changes.stopped, ["liveupdate-prepare.target"]);
    assert.ok(back.jobs.filter((j) => j.anchor).every((j) => j.result === "done"));
    assert.deepEqual(new Set(await states(systemd, units.names)), new Set(["active"]));

    // Stopped again, then brought back by the cancel phase listing them.
    await runPhase(ctx, plan("prepare", { stop: units.names }));
    const cancel = await runPhase(ctx, plan("cancel", { start: units.names }));
    // The prepare target left by Conflicts=; it is a marker, not a change to undo.
    assert.deepEqual(
      sorted(cancel.changes.started),
      sorted([...units.names, "liveupdate-cancel.target"]),
    );
    assert.deepEqual(cancel.changes.stopped, []);
    for (const name of units.names) {
      const job = cancel.jobs.find((j) => j.unit === name && j.anchor);
      assert.equal(job?.result, "done", name);
    }
    assert.ok(cancel.jobs.some((j) => j.unit === "liveupdate-prepare.target" && j.type === "stop"));
    assert.deepEqual(new Set(await states(systemd, units.names)), new Set(["active"]));
    assert.equal(await systemd.property("liveupdate-prepare.target", "ActiveState"), "inactive");
    // Notify units are up only once they said READY=1.
    const notify = units.names.find((n) => units.kinds[n] === "notify")!;
    assert.match(await systemd.property(notify, "StatusText"), /^unit \d+ ready$/);

    const undo = await undoChanges(ctx, cancel.changes, 60_000);
    assert.deepEqual(sorted(undo.changes.stopped), sorted(cancel.changes.started));
    assert.deepEqual(new Set(await states(systemd, units.names)), new Set(["inactive"]));
  });
});

Deno.test("services hook into a phase with WantedBy= its target; the phase waits for them", async () => {
  const hook = "[Unit]\nDescription=hook\n[Service]\nType=oneshot\nRemainAfterExit=yes\n" +
    "ExecStart=/bin/sleep 0.3\n[Install]\nWantedBy=liveupdate-updated.target\n";
  await withSystemd({ "hook.service": hook }, async (systemd, manager) => {
    assert.equal((await systemd.systemctl(["enable", "hook.service"])).code, 0);
    const report = await runPhase(context(manager), plan("updated"));
    assert.deepEqual(sorted(report.changes.started), ["hook.service", "liveupdate-updated.target"]);
    const job = report.jobs.find((j) => j.unit === "hook.service");
    assert.deepEqual([job?.anchor, job?.type, job?.result], [false, "start", "done"]);
    assert.equal(await systemd.property("hook.service", "ActiveState"), "active");
  });
});

Deno.test("a failing unit fails the phase and leaves the right list of changes", async () => {
  const units = phaseTestUnits(4, "ok");
  const failing = "[Service]\nType=oneshot\nExecStart=/bin/false\n";
  await withSystemd({ ...units.files, "broken.service": failing }, async (systemd, manager) => {
    const ctx = context(manager);
    const failed = await rejection(
      runPhase(ctx, plan("cancel", { start: [...units.names, "broken.service"] })),
      PhaseFailedError,
    );
    assert.equal(failed.phase, "cancel");
    assert.deepEqual(failed.failures, [{
      unit: "broken.service",
      type: "start",
      result: "failed",
      unitResult: "exit-code",
    }]);
    assert.equal(failed.unit, "broken.service");
    assert.match(failed.message, /start of "broken\.service" ended with result "failed"/);
    assert.deepEqual(
      sorted(failed.changes.started),
      sorted([...units.names, "liveupdate-cancel.target"]),
    );
    assert.deepEqual(failed.changes.stopped, []);
    await undoChanges(ctx, failed.changes, 60_000);
    assert.deepEqual(new Set(await states(systemd, units.names)), new Set(["inactive"]));
  });
});

Deno.test("a stop systemd refuses ends the phase before its start wave", async () => {
  const pinned = "[Unit]\nRefuseManualStop=yes\n[Service]\nExecStart=/bin/sleep infinity\n";
  const units = phaseTestUnits(2, "other");
  await withSystemd({ ...units.files, "pinned.service": pinned }, async (systemd, manager) => {
    assert.equal((await systemd.systemctl(["start", "pinned.service", units.names[0]!])).code, 0);
    const error = await rejection(
      runPhase(
        context(manager),
        plan("prepare", { stop: ["pinned.service", units.names[0]!], start: [units.names[1]!] }),
      ),
      PhaseFailedError,
    );
    assert.equal(error.failures.length, 1);
    assert.equal(error.failures[0]!.unit, "pinned.service");
    assert.equal(error.failures[0]!.result, "refused");
    assert.equal(error.failures[0]!.dbusName, "org.freedesktop.systemd1.OnlyByDependency");
    assert.equal(error.dbusName, "org.freedesktop.systemd1.OnlyByDependency");
    assert.match(error.message, /stop of "pinned\.service" refused \(org\.freedesktop/);
    // The other stop went through; the start wave never ran.
    assert.deepEqual(error.changes, { stopped: [units.names[0]!], started: [] });
    assert.deepEqual(await states(systemd, ["pinned.service", ...units.names]), [
      "active",
      "inactive",
      "inactive",
    ]);
  });
});

Deno.test("a unit that times out: its own start timeout, and the phase's", async (t) => {
  const slow = "[Service]\nType=notify\nTimeoutStartSec=1s\nExecStart=/bin/sleep infinity\n";
  const queued =
    "[Unit]\nJobTimeoutSec=1s\n[Service]\nType=notify\nExecStart=/bin/sleep infinity\n";
  const hung = "[Service]\nType=notify\nTimeoutStartSec=infinity\nExecStart=/bin/sleep infinity\n";
  const units = phaseTestUnits(3, "fine");
  await withSystemd(
    { ...units.files, "slow.service": slow, "queued.service": queued, "hung.service": hung },
    async (systemd, manager) => {
      const ctx = context(manager);
      await t.step("JobTimeoutSec= of the unit: job result timeout", async () => {
        const error = await rejection(
          runPhase(ctx, plan("cancel", { start: ["queued.service"] })),
          PhaseFailedError,
        );
        assert.deepEqual(error.failures.map((f) => [f.unit, f.result]), [
          ["queued.service", "timeout"],
        ]);
        await undoChanges(ctx, error.changes, 60_000);
      });
      await t.step(
        "TimeoutStartSec= of the service: failed, the service's result timeout",
        async () => {
          const error = await rejection(
            runPhase(ctx, plan("cancel", { start: [units.names[0]!, "slow.service"] })),
            PhaseFailedError,
          );
          assert.deepEqual(error.failures, [
            { unit: "slow.service", type: "start", result: "failed", unitResult: "timeout" },
          ]);
          assert.match(
            error.message,
            /ended with result "failed" \(the service's result: "timeout"\)/,
          );
          assert.deepEqual(
            sorted(error.changes.started),
            sorted([units.names[0]!, "liveupdate-cancel.target"]),
          );
          await undoChanges(ctx, error.changes, 60_000);
        },
      );
      await t.step("phases.<phase>.timeout: pending jobs cancelled and reported", async () => {
        const error = await rejection(
          runPhase(
            ctx,
            plan("updated", { start: [units.names[1]!, "hung.service"], timeoutMs: 1500 }),
          ),
          PhaseTimeoutError,
        );
        assert.deepEqual(error.pending, ["hung.service"]);
        assert.equal(error.timeoutMs, 1500);
        assert.match(error.message, /phases\.updated\.timeout/);
        // Its start job was cancelled, but the process runs (activating): a change to undo.
        assert.equal(await systemd.property("hung.service", "Job"), "");
        assert.equal(await systemd.property("hung.service", "ActiveState"), "activating");
        assert.ok(error.changes.started.includes("hung.service"));
        assert.ok(error.changes.started.includes(units.names[1]!));
        const undo = await undoChanges(ctx, error.changes, 60_000);
        assert.ok(undo.changes.stopped.includes("hung.service"));
        assert.equal(await systemd.property("hung.service", "ActiveState"), "inactive");
      });
    },
  );
});

Deno.test("a missing unit is refused by preflight (exit code 5) and nothing changes", async () => {
  const units = phaseTestUnits(3, "present");
  await withSystemd(units.files, async (systemd, manager) => {
    assert.equal((await systemd.systemctl(["start", units.names[0]!])).code, 0);
    const error = await rejection(
      runPhase(
        context(manager),
        plan("prepare", { stop: [units.names[0]!], start: [units.names[1]!, "missing.service"] }),
      ),
      UnitPreflightError,
    );
    assert.equal(error.exitCode, ExitCode.Refused);
    assert.equal(error.unit, "missing.service");
    assert.deepEqual(error.problems, [{
      unit: "missing.service",
      source: "phases.prepare.start",
      reason: 'does not exist (LoadState "not-found")',
    }]);
    assert.match(
      error.message,
      /^Unit "missing\.service" in phases\.prepare\.start does not exist/,
    );
    assert.deepEqual(await states(systemd, units.names), ["active", "inactive", "inactive"]);
    assert.equal(await systemd.property("liveupdate-prepare.target", "ActiveState"), "inactive");
  });
});

Deno.test("a dependency failure names both units and changes nothing", async () => {
  const files = {
    "base.service": "[Service]\nType=oneshot\nExecStart=/bin/false\n",
    "dependent.service": "[Unit]\nRequires=base.service\nAfter=base.service\n" +
      "[Service]\nExecStart=/bin/sleep infinity\n",
  };
  await withSystemd(files, async (systemd, manager) => {
    const error = await rejection(
      runPhase(context(manager), plan("finish", { start: ["dependent.service"] })),
      PhaseFailedError,
    );
    assert.deepEqual(sorted(error.failures.map((f) => `${f.unit}:${f.result}`)), [
      "base.service:failed",
      "dependent.service:dependency",
    ]);
    assert.deepEqual(error.changes.started, ["liveupdate-finish.target"]);
    assert.deepEqual(error.changes.stopped, []);
    assert.equal(await systemd.property("dependent.service", "ActiveState"), "inactive");
  });
});

Deno.test("a bus disconnect mid-phase is reported, never a hang", async () => {
  const hung = "[Service]\nType=notify\nTimeoutStartSec=infinity\nExecStart=/bin/sleep infinity\n";
  const units = phaseTestUnits(2, "quick");
  await withSystemd({ ...units.files, "hung.service": hung }, async (systemd, manager) => {
    // Settle the phase at once, so its rejection is handled while the test works.
    const phase = runPhase(
      context(manager),
      plan("prepare", { start: [...units.names, "hung.service"], timeoutMs: 3_600_000 }),
    ).then(() => undefined, (error: unknown) => error);
    // Wait until the hung unit's job is queued, then take the bus away.
    for (let i = 0; i < 500; i++) {
      if (await systemd.property("hung.service", "ActiveState") === "activating") break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await systemd.killBus();
    const error = await phase;
    assert.ok(error instanceof PhaseDisconnectedError, `got ${error}`);
    assert.ok(error.uncertain.includes("hung.service"), error.uncertain.join(","));
    assert.match(error.message, /lost its D-Bus connection/);
    assert.equal(manager.connected, false);
    // Calls on the dead connection fail at once.
    const dead = await rejection(manager.unitStatuses(["hung.service"]), BusDisconnectedError);
    assert.match(dead.message, /connection to systemd was lost/);
  });
});

Deno.test("kexec: the clean path queues kexec.target; the user manager has no KExec()", async () => {
  const kexecTarget = "[Unit]\nDescription=stand-in kexec.target\n";
  await withSystemd({ "kexec.target": kexecTarget }, async (systemd, manager) => {
    await managerKexec(manager).kexec();
    for (let i = 0; i < 500; i++) {
      if (await systemd.property("kexec.target", "ActiveState") === "active") break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await systemd.property("kexec.target", "ActiveState"), "active");
    const error = await rejection(managerKexec(manager, "immediate").kexec(), BusCallError);
    assert.equal(error.dbusName, "org.freedesktop.DBus.Error.NotSupported");
    assert.equal(error.method, "KExec");
  });
});

Deno.test("commands connect through the host's connector and systemd.bus_address", async () => {
  await using systemd = await startPrivateSystemd();
  const root = await Deno.makeTempDir({ prefix: "liveupdate-test-systemd-config-" });
  try {
    await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/etc/liveupdate/config.d/50-test.toml`,
      `[systemd]\nbus_address = "${systemd.busAddress}"\n`,
    );
    const { config } = await loadConfig(Deno, { root });
    // The host as agent/main.ts builds it: the real dbus-next connector.
    const host = createTestHost({ dbus: dbusNextConnector });
    await using manager = await connectSystemd(host, config);
    assert.match(await manager.version(), /^252|^\d{3}/);
    // A host without a connector (unit tests) never reaches any bus.
    await assert.rejects(connectSystemd(createTestHost(), config), /has no D-Bus connector/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("connecting to a bus that is not there is a BusConnectError", async () => {
  const error = await rejection(
    SystemdManager.connect(dbusNextConnector, "unix:path=/nonexistent/liveupdate-test/bus"),
    BusConnectError,
  );
  assert.match(error.message, /^Cannot connect to the D-Bus bus at "unix:path=\/nonexistent/);
  assert.equal(error.address, "unix:path=/nonexistent/liveupdate-test/bus");
});

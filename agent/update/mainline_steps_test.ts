import assert from "node:assert/strict";
import { type Config, defaultsOf, SCHEMA } from "../config/mod.ts";
import { captureOutput } from "../host/test_host.ts";
import type { Clock } from "../host/host.ts";
import { realClock } from "../host/real_host.ts";
import type { SessionKernel } from "../kernel/mod.ts";
import type { KhoTree, KhoUnavailable } from "../kernel/mainline/kho.ts";
import { createLogger } from "../log/mod.ts";
import type { BrokerStatus, PrepareResult, SessionRecord } from "../sessions/mod.ts";
import { ATTEMPT_SCHEMA, type AttemptRecord } from "../store/mod.ts";
import type { SessionsControl, UpdateContext } from "./context.ts";
import {
  mainlineBootState,
  mainlinePreflight,
  SessionsNotReadyError,
  sessionsStep,
  verifyMainline,
  waitForSessions,
} from "./mainline_steps.ts";
import type { Plan } from "./plan.ts";
import { runSteps } from "./steps.ts";

const BOOT = "11111111-2222-3333-4444-555555555555";
const NEXT_BOOT = "99999999-2222-3333-4444-555555555555";
const V73 = { kho: "kho-v4", luo: "luo-v5", fileHandlers: ["memfd-v2"] };

/** A fake session broker: answers as told and records what it was asked. */
class FakeBroker implements SessionsControl {
  readonly socket = "/run/liveupdate/sessions.sock";
  phase: BrokerStatus["phase"] | "down" = "idle";
  subscribers = ["vm-1", "db-1"];
  prepareResult: PrepareResult = { ok: true, sessions: ["vm-1", "db-1"] };
  records: (SessionRecord | null)[] = [];
  readonly calls: string[] = [];

  status(): Promise<BrokerStatus> {
    this.calls.push("status");
    if (this.phase === "down") return Promise.reject(new Error("ECONNREFUSED"));
    return Promise.resolve({
      phase: this.phase,
      socket: this.socket,
      subscribers: this.subscribers.map((id, pid) => ({ id, pid, state: "subscribed" })),
      incoming: [],
    });
  }
  prepare(timeout: number): Promise<PrepareResult> {
    this.calls.push(`prepare ${timeout}`);
    if (this.prepareResult.ok) this.phase = "prepared";
    return Promise.resolve(this.prepareResult);
  }
  abort(reason: string): Promise<void> {
    this.calls.push(`abort ${reason}`);
    this.phase = "idle";
    return Promise.resolve();
  }
  record(): Promise<SessionRecord | null> {
    this.calls.push("record");
    return Promise.resolve(
      this.records.length > 1 ? this.records.shift()! : this.records[0] ?? null,
    );
  }
}

function config(overrides: Record<string, Record<string, unknown>> = {}): Config {
  const base = defaultsOf(SCHEMA) as Record<string, Record<string, unknown>>;
  for (const [section, values] of Object.entries(overrides)) {
    base[section] = { ...base[section], ...values };
  }
  return base as unknown as Config;
}

/** A clock whose sleeps pass at once (the waits are bounded by time). */
function fastClock(): Clock {
  let now = 0;
  return {
    now: () => new Date(Date.UTC(2026, 10, 25) + now),
    monotonic: () => now,
    sleep: (ms: number) => {
      now += ms;
      return Promise.resolve();
    },
  };
}

function fakeContext(
  broker: FakeBroker | undefined,
  options: { config?: Config; bootId?: string } = {},
) {
  const output = captureOutput();
  const clock = fastClock();
  const context = {
    config: options.config ?? config(),
    log: createLogger({ output, clock: realClock, level: "debug", format: "text" }),
    clock,
    fs: Deno,
    facts: {
      cmdline: () => "root=/dev/vda kho=on liveupdate=on",
      osRelease: () => "7.3.4",
      uptimeSeconds: () => 10,
      bootId: () => options.bootId ?? BOOT,
    },
    ...(broker ? { sessions: broker } : {}),
  } as unknown as UpdateContext;
  return { context, output };
}

function tree(direction: "in" | "out", fields: Partial<KhoTree> = {}): KhoTree {
  return {
    direction,
    directory: `/sys/kernel/debug/kho/${direction}`,
    kho: null,
    luo: null,
    hasLuo: false,
    kexec: null,
    problems: [],
    ...fields,
  };
}

function kernel(trees: { in?: KhoTree | KhoUnavailable; out?: KhoTree | KhoUnavailable }) {
  const unavailable = (direction: "in" | "out"): KhoUnavailable => ({
    direction,
    directory: `/sys/kernel/debug/kho/${direction}`,
    reason: "not present",
  });
  const sessions: SessionKernel = {
    device: "/dev/liveupdate",
    kho: (direction) => trees[direction] ?? unavailable(direction),
  };
  return sessions;
}

function plan(overrides: Partial<Plan> = {}): Plan {
  return {
    backend: "mainline",
    target: {
      kernel: "/boot/vmlinuz-7.3.4",
      initrd: null,
      cmdline: "root=/dev/vda kho=on liveupdate=on",
      release: "7.3.4",
      luoVersion: null,
      compatible: V73,
    },
    running: {
      release: "7.3.4",
      luoVersion: null,
      cmdline: "root=/dev/vda kho=on liveupdate=on",
      compatible: V73,
    },
    compat: { verdict: "compatible", sentence: "", allowed: true, override: false },
    devices: { supported: false, selected: [], ancestors: [], changes: [] },
    phases: [],
    kexecArgs: ["-s", "-l", "/boot/vmlinuz-7.3.4", "--command-line=x"],
    kexecWasLoaded: false,
    stopAtPrepared: false,
    issue: "systemd",
    ...overrides,
  };
}

function attempt(status: AttemptRecord["status"], mainline: Partial<Plan["mainline"]> = {}) {
  const p = plan();
  p.mainline = {
    device: "/dev/liveupdate",
    bootId: BOOT,
    liveupdateNumber: 1,
    socket: "/run/liveupdate/sessions.sock",
    subscribers: ["vm-1", "db-1"],
    devices: "",
    ...mainline,
  };
  const record: AttemptRecord = {
    schema: ATTEMPT_SCHEMA,
    id: "20261125T200000.000Z-abcdef",
    agent_version: "test",
    backend: "mainline",
    status,
    created: "2026-11-25T20:00:00.000Z",
    updated: "2026-11-25T20:00:00.000Z",
    kernels: {
      running: { release: "7.3.4", luo_version: null, compatible: V73 },
      target: { release: "7.3.4", luo_version: null, compatible: V73 },
    },
    compat: { verdict: "compatible", reason: "", override: false },
    plan: p as unknown as Record<string, unknown>,
    steps: [],
    timings: {},
    overrides: [],
    notes: {},
  };
  return record;
}

async function kexecDefaults(text: string | undefined): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-mainline-flow-" });
  if (text !== undefined) await Deno.writeTextFile(`${dir}/kexec`, text);
  return { dir, file: `${dir}/kexec` };
}

Deno.test("preflight on mainline: a clean host plans the sessions' side", async () => {
  const { dir, file } = await kexecDefaults("LOAD_KEXEC=false\n");
  try {
    const broker = new FakeBroker();
    const { context } = fakeContext(broker, {
      config: config({ kexec: { tools_defaults: file } }),
    });
    const p = plan();
    const problems: [string, string][] = [];
    const out = tree("out", { luo: { compatible: "luo-v5", liveupdateNumber: 3 }, hasLuo: true });
    await mainlinePreflight(context, kernel({ out }), p, (c, m) => problems.push([c, m]));
    assert.deepEqual(problems, []);
    assert.deepEqual(p.mainline, {
      device: "/dev/liveupdate",
      bootId: BOOT,
      liveupdateNumber: 3,
      socket: broker.socket,
      subscribers: ["vm-1", "db-1"],
      devices: p.mainline!.devices,
    });
    assert.match(p.mainline!.devices, /preserves files only .* no devices/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("preflight on mainline refuses what would lose every session silently", async () => {
  const { dir, file } = await kexecDefaults("LOAD_KEXEC=true\n");
  try {
    const broker = new FakeBroker();
    broker.phase = "preparing";
    const { context } = fakeContext(broker, {
      config: config({ kexec: { tools_defaults: file } }),
    });
    const p = plan({
      running: { release: "7.3.4", luoVersion: null, cmdline: "root=/dev/vda kho=on" },
      kexecWasLoaded: true,
      kexecArgs: ["-l", "/boot/vmlinuz-7.3.4"],
    });
    const problems: [string, string][] = [];
    await mainlinePreflight(context, kernel({}), p, (c, m) => problems.push([c, m]));
    assert.deepEqual(problems.map(([check]) => check), [
      "kexec-tools-loader",
      "cmdline",
      "loaded-kernel",
      "kexec",
      "sessions",
    ]);
    const text = Object.fromEntries(problems);
    assert.match(text["kexec-tools-loader"]!, /sets LOAD_KEXEC=true.*kexec_load.*LOAD_KEXEC=false/);
    assert.match(text.cmdline!, /running kernel's command line lacks liveupdate=on/);
    assert.match(text["loaded-kernel"]!, /already loaded .* kexec_load .* Unload it/);
    assert.match(text.kexec!, /would not load with kexec_file_load/);
    assert.match(text.sessions!, /is preparing: another preparation is under way/);
    assert.equal(p.mainline?.liveupdateNumber, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("preflight on mainline: a broker that does not answer is a problem naming its unit", async () => {
  const broker = new FakeBroker();
  broker.phase = "down";
  const { context } = fakeContext(broker, {
    config: config({ kexec: { tools_defaults: "/nonexistent/kexec" } }),
  });
  const problems: [string, string][] = [];
  await mainlinePreflight(context, kernel({}), plan(), (c, m) => problems.push([c, m]));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]![0], "sessions");
  assert.match(problems[0]![1], /does not answer .* start liveupdate-sessions\.service/);
});

Deno.test("the barrier: every client ready; the broker's record is journaled", async () => {
  const broker = new FakeBroker();
  broker.records = [{
    version: 1,
    phase: "prepared",
    preparedBootId: BOOT,
    preparedAt: "x",
    liveupdateNumber: 3,
    sessions: [],
  }];
  const { context, output } = fakeContext(broker);
  const step = sessionsStep(context);
  assert.equal(step.name, "prepare-sessions");
  const result = await step.run(await step.snapshot!());
  assert.deepEqual(result.sessions, ["vm-1", "db-1"]);
  assert.equal(result.preparedBootId, BOOT);
  assert.equal(result.liveupdateNumber, 3);
  assert.equal(typeof result.durationMs, "number");
  assert.equal(broker.calls[0], `prepare ${context.config.sessions.ready_timeout}`);
  assert.match(output.text(), /Every client is ready: .* holds 2 session\(s\)/);
});

Deno.test("the barrier fails for a client that is never ready, and is undone by an abort", async () => {
  const broker = new FakeBroker();
  broker.prepareResult = {
    ok: false,
    reason: "1 client(s) did not report READY within 60000 ms.",
    clients: [{ id: "stuck-1", problem: "not-ready", detail: "pid 7 never said READY" }],
  };
  const { context, output } = fakeContext(broker);
  const record = attempt("preparing");
  const outcome = await runSteps(record, [sessionsStep(context)], {
    save: () => Promise.resolve(),
    now: () => new Date(),
  });
  assert.equal(outcome.ok, false);
  assert.ok(!outcome.ok && outcome.error instanceof SessionsNotReadyError);
  assert.deepEqual(outcome.undo.undone, ["prepare-sessions"]);
  const entry = record.steps[0]!;
  assert.equal(entry.status, "undone");
  assert.match(entry.error!, /barrier failed: 1 client\(s\) did not report READY/);
  const result = entry.result as { clients: { id: string }[] };
  assert.deepEqual(result.clients.map((c) => c.id), ["stuck-1"]);
  assert.deepEqual(broker.calls.filter((c) => c.startsWith("abort")), [
    "abort the live update was rolled back",
  ]);
  assert.match(output.text(), /session "stuck-1" held up the live update \(not-ready\)/);
});

Deno.test("which boot this is, from the record and the handover", async () => {
  const broker = new FakeBroker();
  const live = {
    in: tree("in", {
      hasLuo: true,
      kexec: { version: 1, previousRelease: "7.3.4", kexecCount: 1 },
    }),
    out: tree("out", { luo: { compatible: "luo-v5", liveupdateNumber: 2 }, hasLuo: true }),
  };
  const cases: [string, AttemptRecord | null, Parameters<typeof kernel>[0], string, string][] = [
    ["no attempt", null, live, NEXT_BOOT, "normal"],
    ["the kexec did not start, sessions held", attempt("kexec-issued"), live, BOOT, "prepared"],
    ["a live-update boot", attempt("kexec-issued"), live, NEXT_BOOT, "updated"],
    ["a finish that restarts", attempt("finishing"), live, NEXT_BOOT, "updated"],
    ["a cold boot", attempt("kexec-issued"), {}, NEXT_BOOT, "normal"],
    [
      "a kexec without LUO",
      attempt("kexec-issued"),
      {
        in: tree("in"),
        out: live.out,
      },
      NEXT_BOOT,
      "normal",
    ],
    [
      "another update's handover",
      attempt("kexec-issued", { liveupdateNumber: 5 }),
      live,
      NEXT_BOOT,
      "normal",
    ],
    ["an interrupted prepare", attempt("preparing"), live, NEXT_BOOT, "normal"],
  ];
  for (const [name, open, trees, bootId, expected] of cases) {
    broker.phase = "prepared";
    const { context } = fakeContext(broker, { bootId });
    const finding = await mainlineBootState(context, kernel(trees), open);
    assert.equal(finding.state, expected, `${name}: ${finding.reason}`);
  }
  // Same boot, but the broker holds nothing (stopped or aborted).
  broker.phase = "idle";
  const { context } = fakeContext(broker, { bootId: BOOT });
  const same = await mainlineBootState(context, kernel(live), attempt("kexec-issued"));
  assert.equal(same.state, "normal");
  assert.match(same.reason, /holds no prepared sessions/);
});

Deno.test("after the kexec the handover is verified against the record", () => {
  const record = attempt("finishing");
  const good = verifyMainline(
    kernel({
      in: tree("in", {
        kho: "kho-v4",
        hasLuo: true,
        kexec: { version: 1, previousRelease: "7.3.4", kexecCount: 1 },
      }),
      out: tree("out", { luo: { compatible: "luo-v5", liveupdateNumber: 2 }, hasLuo: true }),
    }),
    record,
  );
  assert.deepEqual(good.problems, []);
  assert.ok(good.checks.every((check) => check.ok === true), JSON.stringify(good.checks));
  const bad = verifyMainline(
    kernel({
      in: tree("in", {
        kho: "kho-v4",
        hasLuo: true,
        kexec: { version: 1, previousRelease: "7.2.0", kexecCount: 1 },
      }),
      out: tree("out", { luo: { compatible: "luo-v6", liveupdateNumber: 9 }, hasLuo: true }),
    }),
    record,
  );
  assert.deepEqual(bad.checks.filter((c) => c.ok === false).map((c) => c.what), [
    "previous-release",
    "luo-taken-over",
    "luo-format",
  ]);
  assert.match(bad.problems.join(" "), /Handover check "luo-format" failed/);
});

function sessionRecord(
  phase: SessionRecord["phase"],
  outcomes: Record<string, string>,
  preparedBootId = BOOT,
): SessionRecord {
  return {
    version: 1,
    phase,
    preparedBootId,
    preparedAt: "x",
    restoredBootId: NEXT_BOOT,
    liveupdateNumber: 1,
    sessions: Object.entries(outcomes).map(([name, outcome]) => ({
      name,
      client: { pid: 1, uid: 0 },
      outcome: outcome as SessionRecord["sessions"][number]["outcome"],
      ...(outcome === "lost" ? { detail: "ENOENT" } : {}),
    })),
  };
}

Deno.test("finish waits until the broker has settled every session and records the outcome", async () => {
  const broker = new FakeBroker();
  broker.records = [
    sessionRecord("restoring", { "vm-1": "waiting", "db-1": "waiting" }),
    sessionRecord("restoring", { "vm-1": "claimed", "db-1": "waiting" }),
    sessionRecord("done", { "vm-1": "finished", "db-1": "finished-unclaimed" }),
  ];
  const { context, output } = fakeContext(broker, { bootId: NEXT_BOOT });
  const summary = await waitForSessions(context, attempt("finishing"));
  assert.deepEqual(summary.finished, ["vm-1"]);
  assert.deepEqual(summary.unclaimed, ["db-1"]);
  assert.deepEqual(summary.lost, []);
  assert.equal(summary.total, 2);
  assert.equal(summary.phase, "done");
  assert.match(output.text(), /Session "db-1" was not claimed within 600s; the broker finished it/);
});

Deno.test("finish fails the step when a session was lost, or no record of the update exists", async () => {
  const broker = new FakeBroker();
  broker.records = [sessionRecord("done", { "vm-1": "lost", "db-1": "finished" })];
  const { context } = fakeContext(broker, { bootId: NEXT_BOOT });
  await assert.rejects(waitForSessions(context, attempt("finishing")), (error: unknown) => {
    assert.match(String(error), /1 of 2 session\(s\) did not survive the update: vm-1/);
    const partial = (error as { partialResult: { lost: { name: string }[] } }).partialResult;
    assert.deepEqual(partial.lost.map((l) => l.name), ["vm-1"]);
    return true;
  });
  // A record of another preparation does not count.
  const other = new FakeBroker();
  other.records = [sessionRecord("done", { "vm-1": "finished" }, "another-boot")];
  const slow = fakeContext(other, {
    bootId: NEXT_BOOT,
    config: config({ sessions: { claim_timeout: 1 } }),
  });
  await assert.rejects(
    waitForSessions(slow.context, attempt("finishing")),
    /has no record of this update's sessions/,
  );
});

/**
 * Conformance: every row of LUO-ABI.md's write semantics, for every writable
 * file, in every state, with every kind of value (kstrtol(buf, 0) as sysfs
 * calls it: one trailing newline allowed, +/- signs, 0x and 0 prefixes,
 * overflow → EINVAL since the stores shadow kstrtol's ERANGE).
 */
import assert from "node:assert/strict";
import { type Sim, startSim } from "./harness.ts";
import {
  DEV,
  goToState,
  type Outcome,
  rawWrite,
  read,
  smallTree,
  state,
  write,
} from "./_conformance.ts";
import type { LuoState } from "./harness.ts";
import { openLibc } from "../../agent/host/libc.ts";

const encoder = new TextEncoder();

/** Values kstrtol parses, by the number they parse to (0, 1 or another). */
const ONE = ["1", "1\n", "+1", "01", "0x1", "0X1\n", "0x01", "0001", "1\0junk after a NUL"];
const ZERO = ["0", "0\n", "00", "-0", "+0", "0x0", "-0x0\n", "000"];
const OTHER = [
  "2",
  "-1",
  "-1\n",
  "0x2",
  "010",
  "0xff",
  "9223372036854775807",
  "-9223372036854775808",
  "07",
];
/** Values kstrtol refuses (EINVAL, or ERANGE which the stores turn into EINVAL). */
const BAD = [
  " 1",
  "1 ",
  "\t1",
  "1\t",
  "abc",
  "1\n\n",
  "1\r\n",
  "\n",
  "0x",
  "0x\n",
  "08",
  "09",
  "1.0",
  "1e0",
  "true",
  "y",
  "on",
  "--1",
  "+-1",
  "-+1",
  "++1",
  "+",
  "-",
  "0b1",
  "0x1g",
  "1abc",
  "99999999999999999999",
  "9223372036854775808",
  "-9223372036854775809",
  "0x10000000000000000",
  "0x1\n\n",
  "\0" + "1",
];

type ValueKind = "one" | "zero" | "other" | "bad";
const VALUES: [string, ValueKind][] = [
  ...ONE.map((v): [string, ValueKind] => [v, "one"]),
  ...ZERO.map((v): [string, ValueKind] => [v, "zero"]),
  ...OTHER.map((v): [string, ValueKind] => [v, "other"]),
  ...BAD.map((v): [string, ValueKind] => [v, "bad"]),
];

interface Expect {
  outcome: Outcome;
  /** The state after the write. */
  state: LuoState;
}

function prepareRow(kind: ValueKind, now: LuoState): Expect {
  if (kind === "one" && now === "normal") return { outcome: "ok", state: "prepared" };
  if (kind === "zero" && now === "prepared") return { outcome: "ok", state: "normal" };
  return { outcome: "EINVAL", state: now };
}

function finishRow(kind: ValueKind, now: LuoState): Expect {
  if (kind === "one" && now === "updated") return { outcome: "ok", state: "normal" };
  return { outcome: "EINVAL", state: now };
}

async function requested(sim: Sim, device: string): Promise<string> {
  return (await Deno.readTextFile(sim.device(device, "liveupdate/requested"))).trim();
}

/** Runs `rows` in `target` state, restoring state (and DEV.b's request) after each write. */
async function inState(
  target: LuoState,
  body: (sim: Sim) => Promise<void>,
): Promise<void> {
  await using sim = await startSim({ tree: smallTree() });
  // In "prepared", DEV.a is requested (so "requested" holds 1 there).
  if (target === "prepared") await write(sim.device(DEV.a, "liveupdate/requested"), "1");
  await goToState(sim, target);
  await body(sim);
}

for (const target of ["normal", "prepared", "updated"] as const) {
  Deno.test(`prepare: every value in state ${target}`, async () => {
    await inState(target, async (sim) => {
      const file = sim.path("kernel/liveupdate/prepare");
      for (const [value, kind] of VALUES) {
        const expect = prepareRow(kind, target);
        const outcome = await write(file, value);
        assert.equal(outcome, expect.outcome, `prepare ← ${JSON.stringify(value)} in ${target}`);
        assert.equal(await state(sim), expect.state, `state after ${JSON.stringify(value)}`);
        if (expect.state !== target) {
          if (target === "prepared") {
            await write(sim.device(DEV.a, "liveupdate/requested"), "1");
          }
          await goToState(sim, target);
        }
      }
    });
  });

  Deno.test(`finish: every value in state ${target}`, async () => {
    await inState(target, async (sim) => {
      const file = sim.path("kernel/liveupdate/finish");
      for (const [value, kind] of VALUES) {
        const expect = finishRow(kind, target);
        const outcome = await write(file, value);
        assert.equal(outcome, expect.outcome, `finish ← ${JSON.stringify(value)} in ${target}`);
        assert.equal(await state(sim), expect.state, `state after ${JSON.stringify(value)}`);
        if (expect.state !== target) await goToState(sim, target);
      }
    });
  });

  Deno.test(`requested: every value in state ${target}, from 0 and from 1`, async () => {
    await inState(target, async (sim) => {
      const fileB = sim.device(DEV.b, "liveupdate/requested");
      for (const [value, kind] of VALUES) {
        // From 0 (DEV.b is never requested outside "normal").
        const from0: Outcome = kind === "zero"
          ? "ok"
          : kind === "one"
          ? (target === "normal" ? "ok" : "EINVAL")
          : "EINVAL";
        assert.equal(await write(fileB, value), from0, `b ← ${JSON.stringify(value)} in ${target}`);
        const want = from0 === "ok" && kind === "one" ? "1" : "0";
        assert.equal(await requested(sim, DEV.b), want);
        if (want === "1") assert.equal(await write(fileB, "0"), "ok");
        assert.equal(await state(sim), target);
      }
      // From 1: in "normal" (request it first) and "prepared" (DEV.a is requested).
      if (target === "updated") {
        assert.equal(await requested(sim, DEV.a), "0", "requested is 0 after the kexec");
        return;
      }
      const device = target === "normal" ? DEV.b : DEV.a;
      const file = sim.device(device, "liveupdate/requested");
      if (target === "normal") assert.equal(await write(file, "1"), "ok");
      for (const [value, kind] of VALUES) {
        const from1: Outcome = kind === "one"
          ? "ok"
          : kind === "zero"
          ? (target === "normal" ? "ok" : "EINVAL")
          : "EINVAL";
        assert.equal(
          await write(file, value),
          from1,
          `← ${JSON.stringify(value)} from 1 in ${target}`,
        );
        const want = from1 === "ok" && kind === "zero" ? "0" : "1";
        assert.equal(await requested(sim, device), want);
        if (want === "0") assert.equal(await write(file, "1"), "ok");
      }
    });
  });
}

Deno.test("requested: 1 needs live-update support of the device and every listed ancestor", async () => {
  await using sim = await startSim({ tree: smallTree() });
  const cases: [string, Outcome][] = [
    [DEV.root, "ok"],
    [DEV.port, "ok"],
    [DEV.a, "ok"],
    [DEV.eth0, "ok"], // a class device below a grouping directory: parent is DEV.a
    [DEV.badPort, "EINVAL"], // its own bus has no support
    [DEV.belowBadPort, "EINVAL"], // its parent's bus has no support
    [DEV.nvme, "EINVAL"], // its driver has no support
    [DEV.nvmeChar, "EINVAL"],
    [DEV.nvmeDisk, "EINVAL"], // two levels below an unsupported driver
    [DEV.serial, "ok"],
    [DEV.misc, "ok"], // no listed ancestor at all
  ];
  for (const [device, outcome] of cases) {
    const file = sim.device(device, "liveupdate/requested");
    assert.equal(await write(file, "1"), outcome, device);
    assert.equal(await read(file), `ok:${outcome === "ok" ? 1 : 0}\n`, device);
    assert.equal(await write(file, "0"), "ok", `${device}: writing 0 always works`);
  }
  const warnings = (await sim.events()).filter((e) => e.type === "warning").map((e) => e.message);
  assert.ok(warnings.includes("bus[pci] no liveupdate callback"), warnings.join("; "));
  assert.ok(warnings.includes("driver[nvme] no liveupdate callback"), warnings.join("; "));
});

Deno.test("an empty write stores nothing and succeeds, as sysfs_kf_write does", async () => {
  await using sim = await startSim({ tree: smallTree() });
  for (const file of ["kernel/liveupdate/prepare", "kernel/liveupdate/finish"]) {
    assert.equal(await write(sim.path(file), ""), "ok", file);
  }
  assert.equal(await write(sim.device(DEV.a, "liveupdate/requested"), ""), "ok");
  assert.equal(await state(sim), "normal");
  assert.equal((await sim.events()).filter((e) => e.type === "write").length, 0);
});

Deno.test("a write longer than a page reaches the store truncated to 4096 bytes", async () => {
  using libc = openLibc();
  await using sim = await startSim({ tree: smallTree() });
  const prepare = sim.path("kernel/liveupdate/prepare");
  // 4095 zeros and a 1 (octal 1) fill the page; what follows is never seen.
  const long = encoder.encode("0".repeat(4095) + "1" + "garbage".repeat(100));
  assert.equal(rawWrite(libc, prepare, long), 4096);
  assert.equal(await state(sim), "prepared");
  const bad = encoder.encode("1" + " ".repeat(5000));
  assert.equal(rawWrite(libc, prepare, bad), "EINVAL");
});

Deno.test("read-only attributes refuse opening for write with EACCES, even for root", async () => {
  await using sim = await startSim({ tree: smallTree() });
  const readOnly = [
    "kernel/liveupdate/state",
    `devices/${DEV.a}/liveupdate/preserved`,
    `devices/${DEV.a}/liveupdate/reclaimed`,
  ];
  for (const file of readOnly) {
    await assert.rejects(
      () => Deno.writeTextFile(sim.path(file), "1"),
      (error: Error) => error instanceof Deno.errors.PermissionDenied,
      file,
    );
    await assert.rejects(
      () => Deno.open(sim.path(file), { read: true, write: true }),
      Deno.errors.PermissionDenied,
      file,
    );
    assert.match(await read(sim.path(file)), /^ok:/);
  }
  for (const file of ["kernel/liveupdate/prepare", "kernel/liveupdate/finish"]) {
    assert.equal(await read(sim.path(file)), "EACCES", `${file} is write-only (0200)`);
    const info = await Deno.stat(sim.path(file));
    assert.equal(info.mode! & 0o777, 0o200);
  }
  assert.equal((await Deno.stat(sim.path("kernel/liveupdate/state"))).mode! & 0o777, 0o444);
  assert.equal(
    (await Deno.stat(sim.device(DEV.a, "liveupdate/requested"))).mode! & 0o777,
    0o644,
  );
  assert.equal((await Deno.stat(sim.device(DEV.a, "liveupdate/requested"))).size, 4096);
});

Deno.test("creating, removing or renaming files is refused as on sysfs", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await assert.rejects(
    () => Deno.writeTextFile(sim.path("kernel/liveupdate/cancel"), "1"),
    Deno.errors.PermissionDenied,
    "a missing attribute never becomes a file",
  );
  await assert.rejects(() => Deno.mkdir(sim.path("devices/new")));
  await assert.rejects(() => Deno.remove(sim.device(DEV.a, "uevent")));
  await assert.rejects(() => Deno.rename(sim.device(DEV.a, "uevent"), sim.device(DEV.a, "x")));
  await assert.rejects(() => Deno.symlink("x", sim.path("devices/link")));
});

Deno.test("EAGAIN when the state lock is interrupted, for each writer that takes it", async () => {
  await using sim = await startSim({ tree: smallTree() });
  const prepare = sim.path("kernel/liveupdate/prepare");
  const finish = sim.path("kernel/liveupdate/finish");
  const a = sim.device(DEV.a, "liveupdate/requested");

  // Values refused before the lock do not consume the interruption.
  await sim.eagainNext(1);
  assert.equal(await write(prepare, "2"), "EINVAL");
  assert.equal(await write(a, "0"), "ok", "same value: returns before the lock");
  assert.equal(await write(a, "1"), "EAGAIN");
  assert.equal(await read(a), "ok:0\n");
  assert.equal(await write(a, "1"), "ok", "only one interruption was asked for");

  await sim.eagainNext(2);
  assert.equal(await write(prepare, "1"), "EAGAIN");
  assert.equal(await write(prepare, "1"), "EAGAIN");
  assert.equal(await state(sim), "normal");
  assert.equal(await write(prepare, "1"), "ok");
  await sim.eagainNext();
  assert.equal(await write(prepare, "0"), "EAGAIN", "cancel takes the lock too");
  assert.equal(await state(sim), "prepared");
  await sim.kexec();
  await sim.eagainNext();
  assert.equal(await write(finish, "1"), "EAGAIN");
  assert.equal(await state(sim), "updated");
  assert.equal(await write(finish, "1"), "ok");
  assert.equal((await sim.status()).eagain, 0);
});

Deno.test("a failing PREPARE callback's errno passes through the write", async () => {
  await using sim = await startSim({ tree: smallTree() });
  const prepare = sim.path("kernel/liveupdate/prepare");
  await write(sim.device(DEV.a, "liveupdate/requested"), "1");
  for (const errno of ["EBUSY", "ENOMEM", "EINVAL", "ENODEV", "EIO", "EPERM"]) {
    await sim.failNextPrepare("kvm", errno);
    assert.equal(await write(prepare, "1"), errno);
    assert.equal(await state(sim), "normal");
    assert.equal(await read(sim.device(DEV.a, "liveupdate/preserved")), "ok:0\n");
    await sim.failNextPrepare({ device: DEV.port }, errno);
    assert.equal(await write(prepare, "1"), errno, `device ${errno}`);
    assert.equal(await state(sim), "normal");
    assert.equal(await read(sim.device(DEV.a, "liveupdate/preserved")), "ok:0\n");
  }
  assert.equal(await write(prepare, "1"), "ok", "failures are one-shot");
  assert.equal(await read(sim.device(DEV.a, "liveupdate/preserved")), "ok:1\n");
});

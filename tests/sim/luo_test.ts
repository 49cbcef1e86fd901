/**
 * Conformance: the state machine's callbacks, the device layer's preservation
 * order and ancestor rule, cancellation, finish, both kexec outcomes, cold
 * reboots, and the control channel.
 */
import assert from "node:assert/strict";
import { type Sim, SimControlError, type SimEvent, startSim } from "./harness.ts";
import { DEV, goToState, read, smallTree, state, write } from "./_conformance.ts";

const ALL = Object.values(DEV);

async function request(sim: Sim, ...devices: string[]): Promise<void> {
  for (const device of devices) {
    assert.equal(await write(sim.device(device, "liveupdate/requested"), "1"), "ok", device);
  }
}

async function flags(sim: Sim, flag: "requested" | "preserved" | "reclaimed"): Promise<string[]> {
  const set: string[] = [];
  for (const device of ALL) {
    if ((await Deno.readTextFile(sim.device(device, `liveupdate/${flag}`))) === "1\n") {
      set.push(device);
    }
  }
  return set.sort();
}

/** "EVENT subsystem" for callbacks, "EVENT device [via] [errno]" for devices. */
function trace(events: SimEvent[]): string[] {
  return events.filter((e) => e.type === "callback" || e.type === "device").map((e) =>
    [e.event, e.subsystem ?? e.device, e.via, e.errno].filter(Boolean).join(" ")
  );
}

async function prepareTrace(sim: Sim): Promise<[string, string[]]> {
  const since = (await sim.status()).events;
  const outcome = await write(sim.path("kernel/liveupdate/prepare"), "1");
  return [outcome, trace(await sim.events({ since }))];
}

Deno.test("prepare preserves the requested devices and all their ancestors, deepest first", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.b, DEV.eth0);
  const [outcome, events] = await prepareTrace(sim);
  assert.equal(outcome, "ok");
  // Chain order: AFTER_DEVICES (interrupts) first, then devices, then the
  // BEFORE_DEVICES ones in registration order (notifier chains call the
  // highest priority value first). Devices: depth 4, then depth 3 in list
  // order (b was added before a, as eth0's ancestor), then 2, then 1.
  assert.deepEqual(events, [
    "PREPARE interrupts",
    `PREPARE ${DEV.eth0}`,
    `PREPARE ${DEV.b}`,
    `PREPARE ${DEV.a}`,
    `PREPARE ${DEV.port}`,
    `PREPARE ${DEV.root}`,
    "PREPARE devices",
    "PREPARE kvm",
    "PREPARE iommu",
  ]);
  assert.deepEqual(
    await flags(sim, "preserved"),
    [DEV.root, DEV.port, DEV.a, DEV.b, DEV.eth0].sort(),
  );
  assert.deepEqual(await flags(sim, "requested"), [DEV.b, DEV.eth0].sort());
  assert.equal(await state(sim), "prepared");
});

Deno.test("the subsystem order follows the notifier chain's priorities", async () => {
  await using sim = await startSim({
    tree: smallTree(),
    subsystems: ["a:after", "b:before", "devices:with", "c:after", "d:with"],
  });
  assert.deepEqual((await sim.status()).subsystems, ["a", "c", "devices", "d", "b"]);
  const [, events] = await prepareTrace(sim);
  assert.deepEqual(events, ["PREPARE a", "PREPARE c", "PREPARE devices", "PREPARE d", "PREPARE b"]);
});

Deno.test("a failing device cancels the devices before it (reverse), then the subsystems before", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.b, DEV.eth0);
  await sim.failNextPrepare({ device: DEV.a }, "EBUSY");
  const [outcome, events] = await prepareTrace(sim);
  assert.equal(outcome, "EBUSY");
  assert.deepEqual(events, [
    "PREPARE interrupts",
    `PREPARE ${DEV.eth0}`,
    `PREPARE ${DEV.b}`,
    `PREPARE ${DEV.a} driver EBUSY`,
    `CANCEL ${DEV.b}`,
    `CANCEL ${DEV.eth0}`,
    "PREPARE devices EBUSY",
    "CANCEL interrupts",
  ]);
  assert.deepEqual(await flags(sim, "preserved"), []);
  assert.equal(await state(sim), "normal");
  assert.deepEqual(await flags(sim, "requested"), [DEV.b, DEV.eth0].sort(), "requests stay");
});

Deno.test("a failing bus callback cancels that device's driver first", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.a);
  await sim.failNextPrepare({ bus: DEV.port }, "ENODEV");
  const [outcome, events] = await prepareTrace(sim);
  assert.equal(outcome, "ENODEV");
  assert.deepEqual(events, [
    "PREPARE interrupts",
    `PREPARE ${DEV.a}`,
    `PREPARE ${DEV.port} bus ENODEV`,
    `CANCEL ${DEV.port} driver`,
    `CANCEL ${DEV.a}`,
    "PREPARE devices ENODEV",
    "CANCEL interrupts",
  ]);
  assert.deepEqual(await flags(sim, "preserved"), []);
});

Deno.test("a subsystem failing after the devices cancels everything prepared so far", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.a);
  await sim.failNextPrepare("iommu", "ENOMEM");
  const [outcome, events] = await prepareTrace(sim);
  assert.equal(outcome, "ENOMEM");
  assert.deepEqual(events, [
    "PREPARE interrupts",
    `PREPARE ${DEV.a}`,
    `PREPARE ${DEV.port}`,
    `PREPARE ${DEV.root}`,
    "PREPARE devices",
    "PREPARE kvm",
    "PREPARE iommu ENOMEM",
    "CANCEL interrupts",
    `CANCEL ${DEV.root}`,
    `CANCEL ${DEV.port}`,
    `CANCEL ${DEV.a}`,
    "CANCEL devices",
    "CANCEL kvm",
  ]);
  assert.deepEqual(await flags(sim, "preserved"), []);
  assert.equal(await state(sim), "normal");
  const [again] = await prepareTrace(sim);
  assert.equal(again, "ok", "the failure was one-shot");
});

Deno.test("prepare=0 cancels every subsystem and unpreserves the devices", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.serial);
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  assert.deepEqual(await flags(sim, "preserved"), [DEV.platform, DEV.serial].sort());
  const since = (await sim.status()).events;
  assert.equal(await write(sim.path("kernel/liveupdate/prepare"), "0"), "ok");
  assert.deepEqual(trace(await sim.events({ since })), [
    "CANCEL interrupts",
    `CANCEL ${DEV.platform}`,
    `CANCEL ${DEV.serial}`,
    "CANCEL devices",
    "CANCEL kvm",
    "CANCEL iommu",
  ]);
  assert.deepEqual(await flags(sim, "preserved"), []);
  assert.deepEqual(await flags(sim, "requested"), [DEV.serial]);
  assert.equal(await state(sim), "normal");
});

Deno.test("kexec from prepared: the next boot is updated with exactly the preserved set", async () => {
  await using sim = await startSim({ tree: smallTree() });
  const bootId = await sim.bootId();
  await request(sim, DEV.a, DEV.misc);
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  const result = await sim.kexec();
  assert.equal(result.reboot, "live");
  assert.equal(result.state, "updated");
  assert.equal(result.boot, 2);
  assert.notEqual(result.bootId, bootId);
  assert.equal(await sim.bootId(), result.bootId);
  assert.equal(await state(sim), "updated");
  assert.deepEqual(await flags(sim, "preserved"), [DEV.root, DEV.port, DEV.a, DEV.misc].sort());
  assert.deepEqual(await flags(sim, "requested"), [], "a new kernel has no requests");
  assert.deepEqual(await flags(sim, "reclaimed"), []);
  const events = await sim.events();
  const reboot = trace(events.filter((e) => e.event === "REBOOT"));
  assert.deepEqual(reboot, [
    "REBOOT interrupts",
    `REBOOT ${DEV.a}`,
    `REBOOT ${DEV.port}`,
    `REBOOT ${DEV.root}`,
    `REBOOT ${DEV.misc}`,
    "REBOOT devices",
    "REBOOT kvm",
    "REBOOT iommu",
  ]);
  assert.deepEqual(events.at(-1), {
    seq: events.at(-1)!.seq,
    boot: 2,
    type: "boot",
    kind: "live",
    state: "updated",
    bootId: result.bootId,
  });
  // Requests cannot change until finish.
  assert.equal(await write(sim.device(DEV.a, "liveupdate/requested"), "1"), "EINVAL");
});

Deno.test("kexec from normal or updated is a plain kexec: nothing preserved", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.a);
  const plain = await sim.kexec();
  assert.equal(plain.reboot, "plain");
  assert.equal(plain.state, "normal");
  assert.deepEqual(await flags(sim, "requested"), []);
  assert.deepEqual(await flags(sim, "preserved"), []);
  await request(sim, DEV.a);
  await goToState(sim, "updated");
  assert.deepEqual(await flags(sim, "preserved"), [DEV.root, DEV.port, DEV.a].sort());
  const again = await sim.kexec();
  assert.equal(again.reboot, "plain", "updated is not prepared");
  assert.equal(await state(sim), "normal");
  assert.deepEqual(await flags(sim, "preserved"), []);
  assert.equal(again.boot, 4);
  assert.equal(
    (await sim.events()).filter((e) => e.event === "REBOOT").length,
    4 + 3,
    "REBOOT callbacks (4 subsystems, 3 devices) ran for the live kexec only",
  );
});

Deno.test("a failing REBOOT callback cancels; the host then cold-boots with nothing kept", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.a);
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  await sim.failNextReboot("interrupts", "EBUSY");
  const since = (await sim.status()).events;
  const result = await sim.kexec();
  assert.deepEqual(
    { ...result, bootId: undefined },
    {
      ok: true,
      reboot: "failed",
      errno: "EBUSY",
      fallback: "cold",
      boot: 2,
      bootId: undefined,
      state: "normal",
    },
  );
  const events = await sim.events({ since });
  assert.deepEqual(trace(events.filter((e) => e.boot === 1)), [
    "REBOOT interrupts EBUSY",
    "CANCEL interrupts",
    `CANCEL ${DEV.root}`,
    `CANCEL ${DEV.port}`,
    `CANCEL ${DEV.a}`,
    "CANCEL devices",
    "CANCEL kvm",
    "CANCEL iommu",
  ]);
  assert.deepEqual(
    events.filter((e) => e.type === "state").map((e) => `${e.from}→${e.to}`),
    ["prepared→normal"],
  );
  assert.equal(events.at(-1)?.kind, "cold");
  assert.deepEqual(await flags(sim, "preserved"), []);
  assert.deepEqual(await flags(sim, "requested"), []);
});

Deno.test("REBOOT failure without the fallback: the old kernel stays, in normal", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.a);
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  await sim.failNextReboot("kvm", "ENOMEM");
  const result = await sim.kexec({ fallback: false });
  assert.equal(result.reboot, "failed");
  assert.equal(result.errno, "ENOMEM");
  assert.equal(result.fallback, "none");
  assert.equal(result.boot, 1);
  assert.equal(await state(sim), "normal");
  // RFC v1 as written: the device layer's REBOOT succeeded and dropped its list,
  // so the CANCEL that follows finds nothing and `preserved` stays 1.
  assert.deepEqual(await flags(sim, "preserved"), [DEV.root, DEV.port, DEV.a].sort());
  assert.deepEqual(await flags(sim, "requested"), [DEV.a]);
  // A failing device's REBOOT cancels (reverse) only the devices before it.
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  await sim.failNextReboot({ device: DEV.port }, "EIO");
  const since = (await sim.status()).events;
  assert.equal((await sim.kexec({ fallback: false })).errno, "EIO");
  assert.deepEqual(trace(await sim.events({ since })).slice(0, 5), [
    "REBOOT interrupts",
    `REBOOT ${DEV.a}`,
    `REBOOT ${DEV.port} driver EIO`,
    `CANCEL ${DEV.a}`,
    "REBOOT devices EIO",
  ]);
  assert.deepEqual(await flags(sim, "preserved"), [DEV.root, DEV.port].sort());
});

Deno.test("an interrupted state lock makes reboot(2) fail with EAGAIN and leaves the state", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  await sim.eagainNext();
  const result = await sim.kexec({ fallback: false });
  assert.equal(result.errno, "EAGAIN");
  assert.equal(await state(sim), "prepared", "liveupdate_reboot returns before any callback");
  assert.equal((await sim.kexec()).reboot, "live");
});

Deno.test("finish warns about unreclaimed devices, deepest first, and clears the flags", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.eth0);
  await goToState(sim, "updated");
  await sim.setReclaimed(DEV.eth0);
  await sim.setReclaimed(DEV.port);
  await sim.setReclaimed(DEV.serial); // not preserved: finish leaves it alone
  assert.deepEqual(await flags(sim, "reclaimed"), [DEV.eth0, DEV.port, DEV.serial].sort());
  const since = (await sim.status()).events;
  assert.equal(await write(sim.path("kernel/liveupdate/finish"), "1"), "ok");
  const events = await sim.events({ since });
  assert.deepEqual(
    events.filter((e) => e.type === "warning").map((e) => `${e.device}: ${e.message}`),
    [
      `${DEV.a}: Device was not reclaimed during live update`,
      `${DEV.root}: Device was not reclaimed during live update`,
    ],
  );
  assert.deepEqual(trace(events), [
    "FINISH interrupts",
    `FINISH ${DEV.eth0}`,
    `FINISH ${DEV.a}`,
    `FINISH ${DEV.port}`,
    `FINISH ${DEV.root}`,
    "FINISH devices",
    "FINISH kvm",
    "FINISH iommu",
  ]);
  assert.deepEqual(await flags(sim, "preserved"), []);
  assert.deepEqual(await flags(sim, "reclaimed"), [DEV.serial]);
  assert.equal(await state(sim), "normal");
  await sim.setReclaimed(DEV.serial, false);
  assert.deepEqual(await flags(sim, "reclaimed"), []);
});

Deno.test("a cold reboot forgets everything and counts the boot", async () => {
  await using sim = await startSim({ tree: smallTree() });
  await request(sim, DEV.a);
  await write(sim.path("kernel/liveupdate/prepare"), "1");
  const result = await sim.reboot();
  assert.equal(result.reboot, "cold");
  assert.equal(result.boot, 2);
  assert.equal(await state(sim), "normal");
  assert.deepEqual(await flags(sim, "preserved"), []);
  assert.deepEqual(await flags(sim, "requested"), []);
});

Deno.test("devices vanish and appear through the control channel", async () => {
  await using sim = await startSim({ tree: smallTree() });
  assert.equal(await sim.removeDevice(DEV.nvme), 3, "the controller and its two class devices");
  for (const gone of [DEV.nvme, DEV.nvmeChar, DEV.nvmeDisk]) {
    await assert.rejects(() => Deno.stat(sim.device(gone)), Deno.errors.NotFound, gone);
  }
  await assert.rejects(() => Deno.lstat(sim.path("bus/pci/devices/0000:00:03.0")));
  await assert.rejects(() => Deno.lstat(sim.path("dev/char/240:0")));
  await assert.rejects(() => Deno.lstat(sim.path("class/block/nvme0n1")));
  const root = [...Deno.readDirSync(sim.device(DEV.root))].map((e) => e.name);
  assert.ok(!root.includes("0000:00:03.0"));
  await assert.rejects(() => sim.removeDevice(DEV.nvme), SimControlError);
  await assert.rejects(() => sim.setReclaimed(DEV.nvmeDisk), /no device/);

  await sim.addDevice({
    path: `${DEV.port}/0000:01:00.2`,
    subsystem: "pci",
    driver: "vfio-pci",
    busSupport: true,
    driverSupport: true,
    uevent: { DRIVER: "vfio-pci" },
  });
  const added = sim.device(`${DEV.port}/0000:01:00.2`);
  assert.equal(await Deno.readTextFile(`${added}/uevent`), "DRIVER=vfio-pci\n");
  assert.equal(await Deno.readLink(`${added}/driver`), "../../../../bus/pci/drivers/vfio-pci");
  assert.equal(
    await Deno.readLink(sim.path("bus/pci/devices/0000:01:00.2")),
    `../../../devices/${DEV.port}/0000:01:00.2`,
  );
  await request(sim, `${DEV.port}/0000:01:00.2`);
  // The same path again, or a name clash in the bus directory, is refused.
  await assert.rejects(
    () =>
      sim.addDevice({
        path: `${DEV.port}/0000:01:00.2`,
        busSupport: true,
        driverSupport: true,
        uevent: {},
      }),
    /listed twice/,
  );
  await assert.rejects(
    () =>
      sim.addDevice({
        path: "elsewhere/0000:01:00.2",
        subsystem: "pci",
        busSupport: true,
        driverSupport: true,
        uevent: {},
      }),
    /clashes/,
  );
  // A removed path can come back.
  await sim.addDevice({ path: DEV.nvme, busSupport: true, driverSupport: true, uevent: {} });
  assert.equal(await read(sim.device(DEV.nvme, "liveupdate/requested")), "ok:0\n");
  assert.deepEqual((await sim.status()).devices, smallTree().devices.length - 3 + 2);
});

Deno.test("the control channel refuses bad commands with the reason", async () => {
  await using sim = await startSim({ tree: smallTree() });
  const refusals: [string, string, RegExp][] = [
    ["frobnicate", "EINVAL", /unknown command "frobnicate"/],
    ["fail PREPARE EWHAT kvm", "EINVAL", /not an errno/],
    ["fail FINISH EBUSY kvm", "EINVAL", /only PREPARE and REBOOT/],
    ["fail PREPARE EBUSY nosuch", "ENOENT", /no subsystem "nosuch"/],
    ["fail PREPARE EBUSY devices", "EINVAL", /through a device/],
    [`fail PREPARE EBUSY device:${DEV.root}`, "EINVAL", /no driver or bus callback/],
    [`fail PREPARE EBUSY bus:${DEV.eth0}`, "EINVAL", /no bus callback/],
    ["fail PREPARE EBUSY device:nope", "ENOENT", /no device nope/],
    ["eagain -1", "EINVAL", /eagain N/],
    ["notify maybe", "EINVAL", /notify on\|off/],
    ["kexec now", "EINVAL", /nofallback/],
    ["add a\tb", "EINVAL", /7 tab-separated columns/],
    ["status\nstatus", "EINVAL", /one command per write/],
  ];
  for (const [command, errno, message] of refusals) {
    await assert.rejects(() => sim.control(command), (error: SimControlError) => {
      assert.equal(error.errno, errno, command);
      assert.match(error.message, message, command);
      return true;
    });
  }
  await sim.failNextPrepare("kvm", 16);
  await sim.failNextReboot({ driver: DEV.a }, "EBUSY");
  await sim.eagainNext(3);
  const status = await sim.status();
  assert.deepEqual(status.failures, [
    { event: "PREPARE", errno: "EBUSY", target: "kvm" },
    { event: "REBOOT", errno: "EBUSY", target: `driver:${DEV.a}` },
  ]);
  assert.equal(status.eagain, 3);
  await sim.clearFailures();
  const cleared = await sim.status();
  assert.deepEqual([cleared.failures, cleared.eagain], [[], 0]);
  await sim.clearEvents();
  assert.deepEqual(await sim.events(), []);
  await sim.reboot();
  assert.deepEqual((await sim.events()).map((e) => e.type), ["control", "boot"]);
});

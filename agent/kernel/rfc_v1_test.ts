import assert from "node:assert/strict";
import { ExitCode } from "../exit_codes.ts";
import type { Libc } from "../host/mod.ts";
import { type FakeFile, fakeFs, osError } from "./_fake_fs.ts";
import type { KernelContext } from "./backend.ts";
import { DevicePathError } from "./device_path.ts";
import { type Kernel, requireDevices, requireStateMachine } from "./kernel.ts";
import { KernelError, KernelUnsupportedError } from "./kernel_error.ts";
import { errnoOf } from "./kernel_failure.ts";
import { checkWritable, probeRfcV1, rfcV1Provider } from "./rfc_v1.ts";
import { libcKernelFs, openLibc } from "../host/mod.ts";
import { detectKernel, openKernel } from "./select.ts";

const SYS = "/fake/sys";
const LUO = `${SYS}/kernel/liveupdate`;
const DEV = "pci0000:00/0000:00:02.0";
const DEVDIR = `${SYS}/devices/${DEV}/liveupdate`;

function noLibc(): Libc {
  throw new Error("the test did not expect libc to be used");
}

function context(files: Record<string, FakeFile | string>) {
  const fake = fakeFs(files);
  const ctx: KernelContext = {
    fs: fake.fs,
    libc: noLibc,
    sysfs: SYS,
    debugfs: "/fake/debug",
    device: "/fake/dev/liveupdate",
    watchInterval: 1000,
  };
  return { ...fake, ctx };
}

function luoFiles(state = "normal\n", extra: Record<string, FakeFile | string> = {}) {
  return {
    [`${LUO}/state`]: state,
    [`${LUO}/prepare`]: "",
    [`${LUO}/finish`]: "",
    [`${DEVDIR}/requested`]: "0\n",
    [`${DEVDIR}/preserved`]: "0\n",
    [`${DEVDIR}/reclaimed`]: "0\n",
    ...extra,
  };
}

async function open(files: Record<string, FakeFile | string>) {
  const fake = context(files);
  const kernel = await openKernel(fake.ctx, "rfc-v1");
  return { ...fake, kernel, sm: requireStateMachine(kernel), devices: requireDevices(kernel) };
}

async function rejects(promise: Promise<unknown>): Promise<KernelError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof KernelError, `expected KernelError, got ${error}`);
    return error;
  }
  assert.fail("expected a rejection");
}

Deno.test("rfc-v1 probe: a complete interface is usable and reports its state", async () => {
  const { ctx } = context(luoFiles("prepared\n"));
  const probe = await probeRfcV1(ctx);
  assert.equal(probe.usable, true);
  assert.equal(probe.state, "prepared");
  assert.deepEqual(probe.features, { stateMachine: true, devices: true, extraFiles: [] });
  assert.equal(probe.location, LUO);
});

Deno.test("rfc-v1 probe: says precisely what is missing", async () => {
  let probe = await probeRfcV1(context({ [`${SYS}/kernel/mm/x`]: "" }).ctx);
  assert.equal(probe.present, false);
  assert.deepEqual(probe.missing, [LUO]);
  assert.match(probe.summary, /No \/fake\/sys\/kernel\/liveupdate: .*liveupdate=1/);

  probe = await probeRfcV1(context({ "/elsewhere/x": "" }).ctx);
  assert.match(
    probe.summary,
    /No \/fake\/sys\/kernel: \/fake\/sys is not sysfs; check paths\.sysfs/,
  );

  const files: Record<string, string> = luoFiles();
  delete files[`${LUO}/finish`];
  probe = await probeRfcV1(context(files).ctx);
  assert.equal(probe.present, true);
  assert.equal(probe.usable, false);
  assert.deepEqual(probe.missing, [`${LUO}/finish`]);
  assert.match(probe.summary, /incomplete: \/fake\/sys\/kernel\/liveupdate\/finish is missing/);
});

Deno.test("rfc-v1 probe: an unreadable or garbled state file is a problem, not a guess", async () => {
  let probe = await probeRfcV1(
    context(luoFiles("", { [`${LUO}/state`]: { contents: "", readError: osError("EACCES") } })).ctx,
  );
  assert.equal(probe.usable, false);
  assert.match(probe.summary, /state cannot be read \(EACCES\)/);

  probe = await probeRfcV1(context(luoFiles("garbage\n")).ctx);
  assert.equal(probe.usable, false);
  assert.match(probe.summary, /holds "garbage\\n", not a live-update state/);
});

Deno.test("rfc-v1 probe: optional files are detected, and enabled=0 means disabled", async () => {
  let probe = await probeRfcV1(
    context(luoFiles("normal\n", { [`${LUO}/cancel`]: "", [`${LUO}/enabled`]: "1\n" })).ctx,
  );
  assert.equal(probe.usable, true);
  assert.deepEqual(probe.features?.extraFiles, ["cancel", "enabled"]);
  probe = await probeRfcV1(context(luoFiles("normal\n", { [`${LUO}/enabled`]: "0\n" })).ctx);
  assert.equal(probe.usable, false);
  assert.match(probe.summary, /enabled says live update is disabled/);
});

Deno.test("rfc-v1: state parses exactly the three state names", async () => {
  for (const state of ["normal", "prepared", "updated"]) {
    const { sm } = await open(luoFiles(`${state}\n`));
    assert.equal(await sm.state(), state);
  }
  for (const bad of ["", "\n", "Normal\n", "normal\n\n", "preparing\n", "normal \n", "1\n"]) {
    const { sm, files } = await open(luoFiles());
    files.set(`${LUO}/state`, { contents: bad });
    const error = await rejects(sm.state());
    assert.equal(error.errno, undefined);
    assert.equal(error.file, `${LUO}/state`);
    assert.equal(error.operation, "read");
    assert.match(error.message, bad === "" ? /is empty, not a live-update state/ : /holds "/);
  }
});

Deno.test("rfc-v1: prepare, cancel and finish write exactly 1, 0 and 1", async () => {
  const { sm, writes } = await open(luoFiles());
  await sm.prepare();
  await sm.cancel();
  await sm.finish();
  assert.deepEqual(writes, [[`${LUO}/prepare`, "1"], [`${LUO}/prepare`, "0"], [
    `${LUO}/finish`,
    "1",
  ]]);
});

Deno.test("rfc-v1: EINVAL on prepare names the state that forbids it", async () => {
  const reject = {
    contents: "",
    onWrite: () => {
      throw osError("EINVAL");
    },
  };
  for (
    const [state, pattern] of [
      ["prepared", /state is "prepared", and prepare needs "normal"\. An update is already/],
      ["updated", /state is "updated", and prepare needs "normal"\. The previous update is not/],
      ["normal", /A subsystem's prepare callback refused with EINVAL.*stays "normal"/],
    ] as const
  ) {
    const { sm } = await open(luoFiles(`${state}\n`, { [`${LUO}/prepare`]: reject }));
    const error = await rejects(sm.prepare());
    assert.equal(error.errno, "EINVAL");
    assert.equal(error.file, `${LUO}/prepare`);
    assert.equal(error.operation, "prepare");
    assert.match(error.message, pattern);
  }
});

Deno.test("rfc-v1: a failing prepare callback's errno passes through", async () => {
  for (const errno of ["EBUSY", "ENOMEM", "ENODEV", "EIO"]) {
    const { sm } = await open(
      luoFiles("normal\n", {
        [`${LUO}/prepare`]: {
          contents: "",
          onWrite: () => {
            throw osError(errno);
          },
        },
      }),
    );
    const error = await rejects(sm.prepare());
    assert.equal(error.errno, errno);
    assert.equal(error.operation, "prepare");
    assert.match(error.message, new RegExp(`prepare callback failed with ${errno}`));
    assert.match(error.message, /state stays "normal"/);
  }
});

Deno.test("rfc-v1: EAGAIN says nothing changed and to retry, with the busy exit code", async () => {
  const { sm } = await open(
    luoFiles("normal\n", {
      [`${LUO}/finish`]: {
        contents: "",
        onWrite: () => {
          throw osError("EAGAIN");
        },
      },
    }),
  );
  const error = await rejects(sm.finish());
  assert.equal(error.errno, "EAGAIN");
  assert.equal(error.operation, "finish");
  assert.equal(error.exitCode, ExitCode.Busy);
  assert.match(error.message, /nothing changed\. Retry\./);
});

Deno.test("rfc-v1: EINVAL on cancel and finish explain the needed state", async () => {
  const reject = {
    contents: "",
    onWrite: () => {
      throw osError("EINVAL");
    },
  };
  const { sm } = await open(
    luoFiles("normal\n", { [`${LUO}/prepare`]: reject, [`${LUO}/finish`]: reject }),
  );
  let error = await rejects(sm.cancel());
  assert.equal(error.operation, "cancel");
  assert.match(error.message, /state is "normal", and cancel needs "prepared"; there is nothing/);
  error = await rejects(sm.finish());
  assert.equal(error.operation, "finish");
  assert.match(error.message, /state is "normal", and finish needs "updated"/);
});

Deno.test("rfc-v1: a missing global file is ENOENT with the unsupported exit code", async () => {
  const files = luoFiles();
  const { sm, files: map } = await open(files);
  map.delete(`${LUO}/finish`);
  const error = await rejects(sm.finish());
  assert.equal(error.errno, "ENOENT");
  assert.equal(error.exitCode, ExitCode.Unsupported);
  assert.match(error.message, /finish does not exist/);
});

Deno.test("rfc-v1: EACCES says read-only or not root", async () => {
  const { sm } = await open(
    luoFiles("normal\n", {
      [`${LUO}/prepare`]: {
        contents: "",
        onWrite: () => {
          throw osError("EACCES");
        },
      },
    }),
  );
  const error = await rejects(sm.prepare());
  assert.equal(error.errno, "EACCES");
  assert.match(error.message, /Permission denied writing .*prepare \(EACCES\)/);
});

Deno.test("rfc-v1: devices read their three flags and write requested", async () => {
  const { devices, writes, files } = await open(luoFiles());
  files.set(`${DEVDIR}/preserved`, { contents: "1\n" });
  assert.deepEqual(await devices.readDevice(DEV), {
    requested: false,
    preserved: true,
    reclaimed: false,
  });
  await devices.setRequested(DEV, true);
  await devices.setRequested(DEV, false);
  assert.deepEqual(writes, [[`${DEVDIR}/requested`, "1"], [`${DEVDIR}/requested`, "0"]]);
});

Deno.test("rfc-v1: a vanished device is ENOENT naming the device", async () => {
  const { devices } = await open(luoFiles());
  let error = await rejects(devices.readDevice("pci0000:00/0000:00:09.0"));
  assert.equal(error.errno, "ENOENT");
  assert.match(error.message, /Device "pci0000:00\/0000:00:09\.0" has no .*removed/);
  assert.equal(error.exitCode, ExitCode.Failed);
  error = await rejects(devices.setRequested("pci0000:00/0000:00:09.0", true));
  assert.equal(error.errno, "ENOENT");
  assert.equal(error.operation, "request");
});

Deno.test("rfc-v1: EINVAL on requested tells the state rule from missing support", async () => {
  const reject = {
    contents: "0\n",
    onWrite: () => {
      throw osError("EINVAL");
    },
  };
  let { devices } = await open(luoFiles("normal\n", { [`${DEVDIR}/requested`]: reject }));
  let error = await rejects(devices.setRequested(DEV, true));
  assert.equal(error.operation, "request");
  assert.match(error.message, /refused to preserve device .* no live-update support/);
  ({ devices } = await open(luoFiles("prepared\n", { [`${DEVDIR}/requested`]: reject })));
  error = await rejects(devices.setRequested(DEV, false));
  assert.equal(error.operation, "unrequest");
  assert.match(error.message, /state is "prepared", and "requested" can change only in "normal"/);
});

Deno.test("rfc-v1: device flags must be 0 or 1", async () => {
  for (const bad of ["", "2\n", "yes\n", "1 \n"]) {
    const { devices, files } = await open(luoFiles());
    files.set(`${DEVDIR}/reclaimed`, { contents: bad });
    const error = await rejects(devices.readDevice(DEV));
    assert.equal(error.file, `${DEVDIR}/reclaimed`);
    assert.equal(error.errno, undefined);
  }
});

Deno.test("rfc-v1: device paths cannot escape <sysfs>/devices", async () => {
  const { devices, writes } = await open(luoFiles());
  for (
    const bad of ["", "/sys/kernel", "../kernel/liveupdate", "pci/../../x", "a//b", "a/./b", "a\0b"]
  ) {
    await assert.rejects(devices.setRequested(bad, true), DevicePathError);
    await assert.rejects(devices.readDevice(bad), DevicePathError);
  }
  assert.deepEqual(writes, []);
});

Deno.test("selection: auto picks the one usable interface, explains when there is none", async () => {
  const { ctx } = context(luoFiles());
  const detection = await detectKernel(ctx, "auto");
  assert.equal(detection.selected?.backend, "rfc-v1");
  assert.equal(detection.probes.length, 2);

  const none = context({ [`${SYS}/kernel/mm/x`]: "" });
  const empty = await detectKernel(none.ctx, "auto");
  assert.equal(empty.selected, undefined);
  assert.deepEqual(empty.missing, [LUO, "/fake/dev/liveupdate"]);
  assert.match(
    empty.reason!,
    /offers no usable live-update interface: No \/fake\/sys\/kernel\/liv/,
  );
  await assert.rejects(openKernel(none.ctx, "auto"), (error: unknown) => {
    assert.ok(error instanceof KernelUnsupportedError);
    assert.deepEqual(error.missing, [LUO, "/fake/dev/liveupdate"]);
    assert.equal(error.exitCode, ExitCode.Unsupported);
    return true;
  });
});

Deno.test("selection: an explicit backend is the only one probed", async () => {
  const { ctx } = context(luoFiles());
  const detection = await detectKernel(ctx, "mainline");
  assert.equal(detection.probes.length, 1);
  assert.equal(detection.selected, undefined);
  assert.match(detection.reason!, /No \/fake\/dev\/liveupdate.*kernel\.backend = "mainline"/);
});

Deno.test("selection: two usable interfaces need kernel.backend", async () => {
  const { ctx } = context(luoFiles());
  const other = { ...rfcV1Provider, name: "mainline" as const };
  const detection = await detectKernel(ctx, "auto", [rfcV1Provider, other]);
  assert.equal(detection.selected, undefined);
  assert.match(detection.reason!, /several live-update interfaces .* set kernel\.backend/);
});

Deno.test("requireStateMachine and requireDevices refuse a kernel without them", () => {
  const kernel: Kernel = {
    backend: "mainline",
    location: "/dev/liveupdate",
    features: { stateMachine: false, devices: false, extraFiles: [] },
    stateMachine: null,
    devices: null,
    incoming: () => Promise.reject(new Error("unused")),
  };
  assert.throws(() => requireStateMachine(kernel), /has no global prepare\/finish state machine/);
  assert.throws(() => requireDevices(kernel), /preserves no devices/);
});

Deno.test("errnoOf: the errno number in Deno's message wins over its code", () => {
  assert.equal(errnoOf(new Error("No such device (os error 19)")), "ENODEV");
  assert.equal(
    errnoOf(Object.assign(new Error("Operation not supported (os error 95)"), { code: "ENOTSUP" })),
    "EOPNOTSUPP",
  );
  assert.equal(
    errnoOf(Object.assign(new TypeError("Invalid argument"), { code: "EINVAL" })),
    "EINVAL",
  );
  assert.equal(errnoOf(new Error("Strange (os error 4000)")), "errno 4000");
  assert.equal(errnoOf(new Deno.errors.NotCapable("Requires read access")), undefined);
  assert.equal(errnoOf("EINVAL"), undefined);
});

Deno.test("rfc-v1: writes only the live-update files, below sysfs through real directories", async () => {
  assert.doesNotThrow(() => checkWritable("/sys", "/sys/kernel/liveupdate/prepare", "prepare"));
  assert.doesNotThrow(() =>
    checkWritable("/sys", "/sys/devices/pci0000:00/liveupdate/requested", "request")
  );
  for (
    const file of [
      "/sys/kernel/liveupdate/state",
      "/sys/power/state",
      "/etc/shadow",
      "/sys/devices/liveupdate/requested",
      "/sysx/kernel/liveupdate/prepare",
    ]
  ) {
    assert.throws(() => checkWritable("/sys", file, "prepare"), KernelError, file);
  }
  // A kernel/liveupdate directory that is a symlink elsewhere: the prepare is refused.
  const root = await Deno.makeTempDir({ prefix: "liveupdate-rfc-v1-" });
  try {
    await Deno.mkdir(`${root}/elsewhere`);
    await Deno.writeTextFile(`${root}/elsewhere/state`, "normal\n");
    await Deno.writeTextFile(`${root}/elsewhere/prepare`, "0\n");
    await Deno.writeTextFile(`${root}/elsewhere/finish`, "0\n");
    await Deno.mkdir(`${root}/sys/kernel`, { recursive: true });
    await Deno.mkdir(`${root}/sys/devices`);
    await Deno.symlink(`${root}/elsewhere`, `${root}/sys/kernel/liveupdate`);
    using libc = openLibc();
    const kernel = await openKernel({
      fs: libcKernelFs(libc),
      libc: () => libc,
      sysfs: `${root}/sys`,
      debugfs: `${root}/debug`,
      device: `${root}/dev/liveupdate`,
      watchInterval: 1000,
    }, "rfc-v1");
    const error = await rejects(kernel.stateMachine!.prepare());
    assert.equal(error.errno, "ELOOP");
    assert.equal(await Deno.readTextFile(`${root}/elsewhere/prepare`), "0\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

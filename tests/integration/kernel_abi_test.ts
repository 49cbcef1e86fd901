/**
 * Acceptance of the RFC v1 backend against the simulated kernel: every
 * write-semantics row of LUO-ABI.md, driven through the agent's kernel layer,
 * gives the right success or typed KernelError (errno, file, operation, a
 * message naming the cause).
 */
import assert from "node:assert/strict";
import { ExitCode } from "../../agent/exit_codes.ts";
import { openLibc } from "../../agent/host/mod.ts";
import {
  detectKernel,
  KernelError,
  KernelUnsupportedError,
  openKernel,
} from "../../agent/kernel/mod.ts";
import { startSim } from "../sim/harness.ts";
import { DEV, kernelTree, openSimKernel, simContext } from "./_kernel_sim.ts";

async function kernelError(
  promise: Promise<unknown>,
  expect: { errno: string; operation: string; file: string; message: RegExp },
): Promise<KernelError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof KernelError, `expected a KernelError, got ${error}`);
    assert.equal(error.errno, expect.errno);
    assert.equal(error.operation, expect.operation);
    assert.equal(error.file, expect.file);
    assert.match(error.message, expect.message);
    return error;
  }
  assert.fail(`expected ${expect.errno} from ${expect.operation}`);
}

Deno.test("rows: prepare 1 in normal, 0 (cancel) in prepared, finish 1 in updated", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { machine } = await openSimKernel(sim, () => libc);
  assert.equal(await machine.state(), "normal");
  await machine.prepare();
  assert.equal(await machine.state(), "prepared");
  await machine.cancel();
  assert.equal(await machine.state(), "normal");
  await machine.prepare();
  assert.equal((await sim.kexec()).reboot, "live");
  assert.equal(await machine.state(), "updated");
  await machine.finish();
  assert.equal(await machine.state(), "normal");
  const writes = (await sim.events()).filter((event) => event.type === "write");
  assert.ok(writes.length >= 4);
  for (const event of writes) assert.match(String(event.value), /^[01]$/, "writes exactly 1 or 0");
});

Deno.test("rows: prepare in prepared or updated is EINVAL naming the state", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { machine } = await openSimKernel(sim, () => libc);
  const file = sim.path("kernel/liveupdate/prepare");
  await machine.prepare();
  await kernelError(machine.prepare(), {
    errno: "EINVAL",
    operation: "prepare",
    file,
    message: /state is "prepared", and prepare needs "normal"/,
  });
  assert.equal(await machine.state(), "prepared");
  await sim.kexec();
  await kernelError(machine.prepare(), {
    errno: "EINVAL",
    operation: "prepare",
    file,
    message: /state is "updated", and prepare needs "normal"\. The previous update is not/,
  });
  assert.equal(await machine.state(), "updated");
});

Deno.test("rows: cancel outside prepared and finish outside updated are EINVAL", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { machine } = await openSimKernel(sim, () => libc);
  const prepare = sim.path("kernel/liveupdate/prepare");
  const finish = sim.path("kernel/liveupdate/finish");
  await kernelError(machine.cancel(), {
    errno: "EINVAL",
    operation: "cancel",
    file: prepare,
    message: /state is "normal", and cancel needs "prepared"; there is nothing to cancel/,
  });
  await kernelError(machine.finish(), {
    errno: "EINVAL",
    operation: "finish",
    file: finish,
    message: /state is "normal", and finish needs "updated"/,
  });
  await machine.prepare();
  await kernelError(machine.finish(), {
    errno: "EINVAL",
    operation: "finish",
    file: finish,
    message: /state is "prepared", and finish needs "updated"/,
  });
  await sim.kexec();
  await kernelError(machine.cancel(), {
    errno: "EINVAL",
    operation: "cancel",
    file: prepare,
    message: /state is "updated", and cancel needs "prepared"\./,
  });
});

Deno.test("rows: a failing PREPARE callback's errno passes through; the state stays normal", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { machine, devices } = await openSimKernel(sim, () => libc);
  await devices.setRequested(DEV.vf, true);
  const file = sim.path("kernel/liveupdate/prepare");
  for (const errno of ["EBUSY", "ENOMEM", "ENODEV", "EIO"]) {
    await sim.failNextPrepare("kvm", errno);
    await kernelError(machine.prepare(), {
      errno,
      operation: "prepare",
      file,
      message: new RegExp(`prepare callback failed with ${errno} .*state stays "normal"`),
    });
    assert.equal(await machine.state(), "normal");
    assert.equal((await devices.readDevice(DEV.vf)).preserved, false);
  }
  // A device's own prepare failing fails the whole prepare too.
  await sim.failNextPrepare({ device: DEV.vf }, "EBUSY");
  await kernelError(machine.prepare(), {
    errno: "EBUSY",
    operation: "prepare",
    file,
    message: /prepare callback failed with EBUSY/,
  });
  // EINVAL from a callback, in state normal, is told apart from the state rule.
  await sim.failNextPrepare("iommu", "EINVAL");
  await kernelError(machine.prepare(), {
    errno: "EINVAL",
    operation: "prepare",
    file,
    message: /A subsystem's prepare callback refused with EINVAL.*stays "normal"/,
  });
  await machine.prepare();
  assert.equal(await machine.state(), "prepared");
});

Deno.test("rows: an interrupted state lock is EAGAIN for every writer, nothing changes", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { machine, devices } = await openSimKernel(sim, () => libc);
  const busy = async (promise: Promise<unknown>, operation: string, file: string) => {
    const error = await kernelError(promise, {
      errno: "EAGAIN",
      operation,
      file,
      message: /EAGAIN .*nothing changed\. Retry\./,
    });
    assert.equal(error.exitCode, ExitCode.Busy);
  };
  const prepare = sim.path("kernel/liveupdate/prepare");
  await sim.eagainNext();
  await busy(
    devices.setRequested(DEV.vf, true),
    "request",
    sim.device(DEV.vf, "liveupdate/requested"),
  );
  assert.equal((await devices.readDevice(DEV.vf)).requested, false);
  await devices.setRequested(DEV.vf, true);
  await sim.eagainNext();
  await busy(machine.prepare(), "prepare", prepare);
  assert.equal(await machine.state(), "normal");
  await machine.prepare();
  await sim.eagainNext();
  await busy(machine.cancel(), "cancel", prepare);
  assert.equal(await machine.state(), "prepared");
  await sim.kexec();
  await sim.eagainNext();
  await busy(machine.finish(), "finish", sim.path("kernel/liveupdate/finish"));
  assert.equal(await machine.state(), "updated");
  await machine.finish();
  assert.equal(await machine.state(), "normal");
});

Deno.test("rows: requested changes only in normal; the same value succeeds in any state", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { machine, devices } = await openSimKernel(sim, () => libc);
  await devices.setRequested(DEV.vf, true);
  await devices.setRequested(DEV.vf, true); // same value
  await machine.prepare();
  await devices.setRequested(DEV.vf, true); // same value, in prepared
  await devices.setRequested(DEV.other, false); // same value (0), in prepared
  const file = sim.device(DEV.vf, "liveupdate/requested");
  await kernelError(devices.setRequested(DEV.vf, false), {
    errno: "EINVAL",
    operation: "unrequest",
    file,
    message: /state is "prepared", and "requested" can change only in "normal"/,
  });
  await kernelError(devices.setRequested(DEV.other, true), {
    errno: "EINVAL",
    operation: "request",
    file: sim.device(DEV.other, "liveupdate/requested"),
    message: /state is "prepared", and "requested" can change only in "normal"/,
  });
  assert.equal((await devices.readDevice(DEV.vf)).requested, true);
  await machine.cancel();
  await devices.setRequested(DEV.vf, false);
  assert.equal((await devices.readDevice(DEV.vf)).requested, false);
});

Deno.test("rows: requesting a device without live-update support (itself or an ancestor) is EINVAL", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { devices } = await openSimKernel(sim, () => libc);
  for (const device of [DEV.badPort, DEV.belowBadPort, DEV.nvme]) {
    await kernelError(devices.setRequested(device, true), {
      errno: "EINVAL",
      operation: "request",
      file: sim.device(device, "liveupdate/requested"),
      message: /no live-update support in its driver or bus/,
    });
    assert.equal((await devices.readDevice(device)).requested, false);
  }
});

Deno.test("rows: preserved covers requested devices and ancestors; reclaimed; finish clears", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { machine, devices } = await openSimKernel(sim, () => libc);
  await devices.setRequested(DEV.vf, true);
  await machine.prepare();
  for (const device of [DEV.vf, DEV.port, DEV.root]) {
    assert.equal((await devices.readDevice(device)).preserved, true, device);
  }
  assert.equal((await devices.readDevice(DEV.other)).preserved, false);
  await sim.kexec();
  assert.deepEqual(await devices.readDevice(DEV.vf), {
    requested: false,
    preserved: true,
    reclaimed: false,
  });
  await sim.setReclaimed(DEV.vf);
  assert.equal((await devices.readDevice(DEV.vf)).reclaimed, true);
  await machine.finish();
  assert.deepEqual(await devices.readDevice(DEV.vf), {
    requested: false,
    preserved: false,
    reclaimed: false,
  });
});

Deno.test("rows: a device that vanished is ENOENT naming it", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { devices } = await openSimKernel(sim, () => libc);
  await devices.readDevice(DEV.other);
  assert.equal(await sim.removeDevice(DEV.other), 1);
  const file = sim.device(DEV.other, "liveupdate/requested");
  await kernelError(devices.setRequested(DEV.other, true), {
    errno: "ENOENT",
    operation: "request",
    file,
    message: /Device "pci0000:00\/0000:00:01\.0\/0000:01:00\.1" has no .* was removed/,
  });
  await assert.rejects(devices.readDevice(DEV.other), (error: unknown) => {
    assert.ok(error instanceof KernelError);
    assert.equal(error.errno, "ENOENT");
    assert.equal(error.operation, "read");
    return true;
  });
});

Deno.test("detection: LUO disabled means no kernel/liveupdate, reported precisely", async () => {
  await using sim = await startSim({ tree: kernelTree(), enabled: false });
  using libc = openLibc();
  const context = simContext(sim, () => libc);
  const detection = await detectKernel(context, "auto");
  assert.equal(detection.selected, undefined);
  assert.ok(detection.missing.includes(sim.path("kernel/liveupdate")));
  assert.match(detection.reason!, /No .*\/kernel\/liveupdate: .*liveupdate=1/);
  await assert.rejects(openKernel(context, "rfc-v1"), (error: unknown) => {
    assert.ok(error instanceof KernelUnsupportedError);
    assert.equal(error.exitCode, ExitCode.Unsupported);
    return true;
  });
});

Deno.test("a failed REBOOT callback leaves the kernel in normal, as the backend reads it", async () => {
  await using sim = await startSim({ tree: kernelTree() });
  using libc = openLibc();
  const { machine, devices } = await openSimKernel(sim, () => libc);
  await devices.setRequested(DEV.vf, true);
  await machine.prepare();
  await sim.failNextReboot("kvm", "EBUSY");
  const result = await sim.kexec();
  assert.equal(result.reboot, "failed");
  assert.equal(await machine.state(), "normal");
  assert.equal((await devices.readDevice(DEV.vf)).preserved, false);
});

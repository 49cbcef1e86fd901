import assert from "node:assert/strict";
import { realClock } from "../../host/real_host.ts";
import { openLibc } from "../../host/libc.ts";
import { KernelUnsupportedError } from "../kernel_error.ts";
import { MainlineKernel, mainlineProbe, NO_DEVICES, releaseAtLeast } from "./backend.ts";

Deno.test("release comparison for GET_NAME (7.2+)", () => {
  assert.equal(releaseAtLeast("7.3.4", 7, 2), true);
  assert.equal(releaseAtLeast("7.2.0-rc1", 7, 2), true);
  assert.equal(releaseAtLeast("6.19.3", 7, 2), false);
  assert.equal(releaseAtLeast("8.0", 7, 2), true);
  assert.equal(releaseAtLeast("weird", 7, 2), null);
});

Deno.test("probe: no device node means not usable, with the reason and what is missing", async () => {
  const proc = await Deno.makeTempDir({ prefix: "liveupdate-mainline-proc-" });
  try {
    await Deno.mkdir(`${proc}/sys/kernel`, { recursive: true });
    await Deno.writeTextFile(`${proc}/sys/kernel/osrelease`, "6.19.2\n");
    await Deno.writeTextFile(`${proc}/cmdline`, "root=/dev/vda kho=on\n");
    const probe = await mainlineProbe({
      fs: Deno,
      device: `${proc}/liveupdate`,
      debugfs: `${proc}/debug`,
      proc,
    });
    assert.equal(probe.usable, false);
    assert.deepEqual(probe.missing, [`${proc}/liveupdate`]);
    assert.match(probe.summary, /no mainline live update/);
    assert.match(probe.problems.join(" "), /lacks liveupdate=on/);
    assert.equal(probe.details.getNameIoctl, false);
    assert.equal(probe.details.devices.reason, NO_DEVICES);
    assert.ok("unavailable" in probe.details.outgoing);
    using libc = openLibc();
    assert.throws(
      () =>
        MainlineKernel.open({ fs: Deno, device: probe.location, debugfs: "/x", proc }, probe, {
          libc,
          clock: realClock,
          busyTimeout: 0,
        }),
      KernelUnsupportedError,
    );
  } finally {
    await Deno.remove(proc, { recursive: true });
  }
});

Deno.test("probe: a character device is usable; devices are never preserved", async () => {
  const probe = await mainlineProbe({
    fs: Deno,
    device: "/dev/null",
    debugfs: "/nonexistent",
    proc: "/proc",
  });
  assert.equal(probe.usable, true);
  assert.deepEqual(probe.features, { stateMachine: false, devices: false, extraFiles: [] });
  using libc = openLibc();
  const kernel = MainlineKernel.open(
    { fs: Deno, device: "/dev/null", debugfs: "/nonexistent", proc: "/proc" },
    probe,
    { libc, clock: realClock, busyTimeout: 0 },
  );
  assert.equal(kernel.devices, null);
  assert.equal(kernel.stateMachine, null);
  assert.equal((await kernel.incoming()).status, "unavailable");
});

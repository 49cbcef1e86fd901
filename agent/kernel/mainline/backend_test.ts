import assert from "node:assert/strict";
import { denoKernelFs } from "../../host/deno_kernel_fs.ts";
import type { KernelContext } from "../backend.ts";
import { KernelUnsupportedError } from "../kernel_error.ts";
import { detectKernel, openKernel } from "../select.ts";
import { buildFdt } from "./_fdt_builder_test_util.ts";
import { mainlineProvider, NO_DEVICES, probeMainline, releaseAtLeast } from "./backend.ts";

Deno.test("release comparison for GET_NAME (7.2+)", () => {
  assert.equal(releaseAtLeast("7.3.4", 7, 2), true);
  assert.equal(releaseAtLeast("7.2.0-rc1", 7, 2), true);
  assert.equal(releaseAtLeast("6.19.3", 7, 2), false);
  assert.equal(releaseAtLeast("8.0", 7, 2), true);
  assert.equal(releaseAtLeast("weird", 7, 2), null);
  assert.match(NO_DEVICES, /preserves files only/);
});

async function hostDir() {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-mainline-backend-" });
  await Deno.mkdir(`${dir}/proc/sys/kernel`, { recursive: true });
  await Deno.writeTextFile(`${dir}/proc/sys/kernel/osrelease`, "7.3.4\n");
  await Deno.writeTextFile(`${dir}/proc/cmdline`, "root=/dev/vda kho=on liveupdate=on\n");
  await Deno.mkdir(`${dir}/sys/kernel`, { recursive: true });
  const context: KernelContext = {
    fs: denoKernelFs,
    libc: () => {
      throw new Error("the mainline probe must not need libc");
    },
    sysfs: `${dir}/sys`,
    debugfs: `${dir}/debug`,
    device: `${dir}/liveupdate`,
    proc: `${dir}/proc`,
    watchInterval: 1000,
  };
  return {
    dir,
    context,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("probe: no device node means not usable, with the reason and what is missing", async () => {
  await using host = await hostDir();
  const probe = probeMainline(host.context);
  assert.equal(probe.present, false);
  assert.equal(probe.usable, false);
  assert.deepEqual(probe.missing, [`${host.dir}/liveupdate`]);
  assert.match(probe.summary, /No .*\/liveupdate: the running kernel has no mainline/);
  assert.throws(() => mainlineProvider.open(host.context, probe), KernelUnsupportedError);
  const detection = await detectKernel(host.context, "auto");
  assert.equal(detection.selected, undefined);
  assert.deepEqual(detection.missing, [
    `${host.dir}/sys/kernel/liveupdate`,
    `${host.dir}/liveupdate`,
  ]);
});

Deno.test("probe: a plain file is present but not usable", async () => {
  await using host = await hostDir();
  await Deno.writeTextFile(`${host.dir}/liveupdate`, "");
  const probe = probeMainline(host.context);
  assert.equal(probe.present, true);
  assert.equal(probe.usable, false);
  assert.match(probe.summary, /is not a character device; check kernel\.device/);
});

Deno.test("auto selects a character device; no state machine, no devices, sessions", async () => {
  await using host = await hostDir();
  const context = { ...host.context, device: "/dev/null" };
  const detection = await detectKernel(context, "auto");
  assert.equal(detection.selected?.backend, "mainline");
  assert.match(detection.selected!.summary, /at \/dev\/null \(Linux 7\.3\.4\): sessions of/);
  const kernel = await openKernel(context, "auto");
  assert.equal(kernel.backend, "mainline");
  assert.equal(kernel.stateMachine, null);
  assert.equal(kernel.devices, null);
  assert.deepEqual(kernel.features, { stateMachine: false, devices: false, extraFiles: [] });
  assert.equal(kernel.sessions?.device, "/dev/null");

  // No debugfs: the handover cannot be told.
  assert.equal((await kernel.incoming()).status, "unavailable");
  // KHO in debugfs but no kho/in: not a kexec with KHO.
  await Deno.mkdir(`${host.dir}/debug/kho/out`, { recursive: true });
  assert.equal((await kernel.incoming()).status, "absent");
  // kho/in without LUO: a kexec without live update.
  await Deno.mkdir(`${host.dir}/debug/kho/in/sub_fdts`, { recursive: true });
  await Deno.writeFile(`${host.dir}/debug/kho/in/fdt`, buildFdt({ compatible: "kho-v4" }));
  const noLuo = await kernel.incoming();
  assert.equal(noLuo.status, "absent");
  assert.match((noLuo as { detail: string }).detail, /handed no live-update sessions over/);
  // A LUO sub-tree (already freed by 7.3, so unreadable) and the kexec metadata.
  await Deno.writeFile(`${host.dir}/debug/kho/in/sub_fdts/LUO`, new Uint8Array(64).fill(0x41));
  const metadata = new Uint8Array(73);
  new DataView(metadata.buffer).setUint32(0, 1, true);
  metadata.set(new TextEncoder().encode("7.3.4"), 4);
  new DataView(metadata.buffer).setUint32(69, 1, true);
  await Deno.writeFile(`${host.dir}/debug/kho/in/sub_fdts/kexec-metadata`, metadata);
  const present = await kernel.incoming();
  assert.equal(present.status, "present");
  assert.equal((present as { version: unknown }).version, null);
  assert.match(
    (present as { detail: string }).detail,
    /previous kernel was 7\.3\.4, kexec 1 since the last cold boot; KHO format kho-v4/,
  );
  const out = kernel.sessions!.kho("out");
  assert.ok("problems" in out);
});

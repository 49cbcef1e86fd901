import assert from "node:assert/strict";
import { denoKernelFs } from "../../host/deno_kernel_fs.ts";
import {
  checkCmdline,
  checkKexecArguments,
  checkKexecToolsLoader,
  checkLoadedKernel,
  cmdlineBool,
  kernelBool,
  parseKexecDefaults,
} from "./preflight.ts";

Deno.test("boolean boot parameters are read as the kernel's kstrtobool reads them", () => {
  for (const text of ["on", "ON", "1", "y", "yes", "true", "T"]) {
    assert.equal(kernelBool(text), true);
  }
  for (const text of ["off", "0", "n", "no", "false", "F"]) assert.equal(kernelBool(text), false);
  for (const text of ["", "2", "o", "maybe"]) assert.equal(kernelBool(text), undefined);
  assert.equal(cmdlineBool("kho=on liveupdate=off liveupdate=1", "liveupdate"), true);
  assert.equal(cmdlineBool("kho=on -- liveupdate=on", "liveupdate"), undefined);
  assert.equal(cmdlineBool("nokho=on", "kho"), undefined);
});

Deno.test("command lines must turn on both kho and liveupdate", () => {
  assert.equal(checkCmdline("root=/dev/vda kho=on liveupdate=on", "target").ok, true);
  const missing = checkCmdline("root=/dev/vda kho=on", "target");
  assert.equal(missing.ok, false);
  assert.match(missing.message, /lacks liveupdate=on; the target would boot without/);
  assert.match(checkCmdline("kho=0 liveupdate=1", "running").message, /lacks kho=on/);
});

Deno.test("kexec-tools' shutdown loader: LOAD_KEXEC=true is refused", async () => {
  assert.deepEqual(
    parseKexecDefaults([
      { file: "/etc/default/kexec", text: 'LOAD_KEXEC=true\nKERNEL_IMAGE="/vmlinuz"\n' },
      { file: "/etc/default/kexec.d/50-off", text: "LOAD_KEXEC=false # agent\n" },
    ]),
    { loadKexec: false, file: "/etc/default/kexec.d/50-off" },
  );
  assert.equal(parseKexecDefaults([{ file: "f", text: '  LOAD_KEXEC="true"' }]).loadKexec, true);
  assert.equal(parseKexecDefaults([{ file: "f", text: "#LOAD_KEXEC=true" }]).loadKexec, false);
  const etc = await Deno.makeTempDir({ prefix: "liveupdate-mainline-etc-" });
  try {
    assert.equal((await checkKexecToolsLoader(Deno, `${etc}/default/kexec`)).ok, true);
    await Deno.mkdir(`${etc}/default/kexec.d`, { recursive: true });
    await Deno.writeTextFile(`${etc}/default/kexec`, "LOAD_KEXEC=false\n");
    await Deno.writeTextFile(`${etc}/default/kexec.d/local`, "LOAD_KEXEC=true\n");
    await Deno.writeTextFile(`${etc}/default/kexec.d/ignored.dpkg-old`, "LOAD_KEXEC=false\n");
    const refused = await checkKexecToolsLoader(Deno, `${etc}/default/kexec`);
    assert.equal(refused.ok, false);
    assert.match(refused.message, /kexec\.d\/local sets LOAD_KEXEC=true.*kexec_load/);
  } finally {
    await Deno.remove(etc, { recursive: true });
  }
});

Deno.test("a kernel loaded by someone else is refused", async () => {
  const sysfs = await Deno.makeTempDir({ prefix: "liveupdate-mainline-sysfs-" });
  try {
    assert.equal(checkLoadedKernel(denoKernelFs, sysfs, false).ok, false);
    await Deno.mkdir(`${sysfs}/kernel`);
    await Deno.writeTextFile(`${sysfs}/kernel/kexec_loaded`, "0\n");
    assert.equal(checkLoadedKernel(denoKernelFs, sysfs, false).ok, true);
    assert.match(checkLoadedKernel(denoKernelFs, sysfs, true).message, /something unloaded it/);
    await Deno.writeTextFile(`${sysfs}/kernel/kexec_loaded`, "1\n");
    assert.match(checkLoadedKernel(denoKernelFs, sysfs, false).message, /kexec -u/);
    assert.equal(checkLoadedKernel(denoKernelFs, sysfs, true).ok, true);
  } finally {
    await Deno.remove(sysfs, { recursive: true });
  }
});

Deno.test("kexec-tools arguments must load with kexec_file_load", () => {
  assert.equal(checkKexecArguments(["-s", "-l", "/boot/vmlinuz"]).ok, true);
  assert.equal(checkKexecArguments(["-sl", "/boot/vmlinuz"]).ok, true);
  assert.equal(checkKexecArguments(["--kexec-file-syscall", "--load", "k"]).ok, true);
  assert.equal(checkKexecArguments(["-l", "/boot/vmlinuz"]).ok, false);
  assert.equal(checkKexecArguments(["-s", "-c", "-l", "k"]).ok, false);
  assert.equal(checkKexecArguments(["-a", "-l", "k"]).ok, false);
  assert.equal(checkKexecArguments(["-s", "k"]).ok, false);
});

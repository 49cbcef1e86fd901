import assert from "node:assert/strict";
import { realProcesses } from "../host/mod.ts";
import { denoKernelFs } from "../host/deno_kernel_fs.ts";
import { KexecError, KexecTools } from "./kexec_tools.ts";

/** Writes an executable stand-in for kexec that logs its arguments and exits as told. */
async function fakeKexec(dir: string, script: string): Promise<string> {
  const path = `${dir}/kexec`;
  await Deno.writeTextFile(path, `#!/bin/sh\necho "$@" >> "${dir}/calls"\n${script}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("load passes an argument array with kexec_file_load, initrd and command line", async () => {
  await withDir(async (dir) => {
    const binary = await fakeKexec(dir, "exit 0");
    const tools = new KexecTools(realProcesses, denoKernelFs, {
      binary,
      sysfs: dir,
      timeoutMs: 10_000,
    });
    await tools.load({ kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: 'a b="c d"' });
    await tools.unload();
    assert.equal(
      await Deno.readTextFile(`${dir}/calls`),
      '-s -l /boot/vmlinuz --initrd=/boot/initrd --command-line=a b="c d"\n-s -u\n',
    );
    assert.deepEqual(tools.loadArgs({ kernel: "/k", cmdline: "x; rm -rf /" }), [
      "-s",
      "-l",
      "/k",
      "--command-line=x; rm -rf /",
    ]);
  });
});

Deno.test("a failing load reports kexec's own message", async () => {
  await withDir(async (dir) => {
    const binary = await fakeKexec(dir, 'echo "Cannot determine the file type of /k" >&2; exit 1');
    const tools = new KexecTools(realProcesses, denoKernelFs, {
      binary,
      sysfs: dir,
      timeoutMs: 10_000,
    });
    const error = await tools.load({ kernel: "/k", cmdline: "" }).catch((e) => e);
    assert.ok(error instanceof KexecError);
    assert.match(
      error.message,
      /failed to load "\/k" \(exit 1\): Cannot determine the file type of \/k\./,
    );
  });
});

Deno.test("a missing kexec binary is a clear error", async () => {
  const tools = new KexecTools(realProcesses, denoKernelFs, {
    binary: "/nonexistent/kexec",
    sysfs: "/x",
    timeoutMs: 1000,
  });
  const error = await tools.unload().catch((e) => e);
  assert.ok(error instanceof KexecError);
  assert.match(
    error.message,
    /Cannot run "\/nonexistent\/kexec" to unload the kexec kernel: .* Install kexec-tools/,
  );
});

Deno.test("a hanging load is stopped after the timeout", async () => {
  await withDir(async (dir) => {
    const binary = await fakeKexec(dir, "exec sleep 30");
    const tools = new KexecTools(realProcesses, denoKernelFs, {
      binary,
      sysfs: dir,
      timeoutMs: 200,
    });
    const error = await tools.load({ kernel: "/k", cmdline: "" }).catch((e) => e);
    assert.ok(error instanceof KexecError);
    assert.match(error.message, /did not load "\/k" within 0\.2s and was stopped/);
  });
});

Deno.test("isLoaded reads kernel/kexec_loaded", async () => {
  await withDir(async (dir) => {
    const tools = new KexecTools(realProcesses, denoKernelFs, {
      binary: "/x",
      sysfs: dir,
      timeoutMs: 1000,
    });
    assert.equal(await tools.isLoaded(), undefined);
    await Deno.mkdir(`${dir}/kernel`);
    await Deno.writeTextFile(`${dir}/kernel/kexec_loaded`, "1\n");
    assert.equal(await tools.isLoaded(), true);
    await Deno.writeTextFile(`${dir}/kernel/kexec_loaded`, "0\n");
    assert.equal(await tools.isLoaded(), false);
  });
});

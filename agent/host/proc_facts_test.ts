import assert from "node:assert/strict";
import { denoKernelFs } from "./deno_kernel_fs.ts";
import { openLibc } from "./libc.ts";
import { libcKernelFs } from "./libc_kernel_fs.ts";
import { procFacts, ProcFileError } from "./proc_facts.ts";

const BOOT_ID = "3f1c2e0a-9b7d-4c55-8e21-0d6a4b9f7c12";

async function procDir(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-proc-" });
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(`${root}/${path.slice(0, path.lastIndexOf("/") + 1)}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${path}`, text);
  }
  return root;
}

Deno.test("procFacts: reads a prepared procfs directory", async () => {
  const root = await procDir({
    "cmdline": "BOOT_IMAGE=/vmlinuz-6.14 root=/dev/vda1 ro kho=on liveupdate=on\n",
    "uptime": "12345.67 24680.12\n",
    "sys/kernel/osrelease": "6.14.0-lu1\n",
    "sys/kernel/random/boot_id": `${BOOT_ID}\n`,
    "sys/kernel/hostname": "hv-a1-17\n",
  });
  try {
    const proc = procFacts(denoKernelFs, root);
    assert.equal(proc.cmdline(), "BOOT_IMAGE=/vmlinuz-6.14 root=/dev/vda1 ro kho=on liveupdate=on");
    assert.equal(proc.uptimeSeconds(), 12345.67);
    assert.equal(proc.osRelease(), "6.14.0-lu1");
    assert.equal(proc.bootId(), BOOT_ID);
    assert.equal(proc.hostname(), "hv-a1-17");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("procFacts: the real /proc through libc", () => {
  using libc = openLibc();
  const proc = procFacts(libcKernelFs(libc), "/proc");
  assert.equal(proc.osRelease(), Deno.osRelease());
  assert.equal(proc.hostname(), Deno.hostname());
  assert.match(proc.bootId(), /^[0-9a-f-]{36}$/);
  assert.equal(proc.bootId(), proc.bootId());
  assert.ok(proc.uptimeSeconds() > 0);
  assert.equal(typeof proc.cmdline(), "string");
});

Deno.test("procFacts: a missing or malformed file is a ProcFileError naming it", async () => {
  const root = await procDir({
    "cmdline": "a\nb\n",
    "uptime": "soon\n",
    "sys/kernel/osrelease": "\n",
    "sys/kernel/random/boot_id": "3F1C2E0A-9B7D-4C55-8E21-0D6A4B9F7C12\n",
  });
  try {
    const proc = procFacts(denoKernelFs, root);
    const check = (call: () => unknown, pattern: RegExp, errno?: string) =>
      assert.throws(call, (error: unknown) => {
        assert.ok(error instanceof ProcFileError);
        assert.match(error.message, pattern);
        assert.equal(error.errno, errno);
        return true;
      });
    check(() => proc.cmdline(), /cmdline holds "a\\nb", not a kernel command line/);
    check(() => proc.uptimeSeconds(), /uptime holds "soon", not two numbers of seconds/);
    check(() => proc.osRelease(), /osrelease holds "", not a kernel release/);
    check(() => proc.bootId(), /boot_id holds "3F1C.*", not a boot id/);
    check(
      () => proc.hostname(),
      new RegExp(`Cannot read ${root}/sys/kernel/hostname \\(ENOENT\\): paths\\.proc`),
      "ENOENT",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

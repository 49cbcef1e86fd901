/**
 * The smallest guest program: proves the guest boots, Deno runs, and the kernel
 * offers what the other guest programs need.
 *
 * @module
 */

import { emit } from "./report.ts";

const exists = (path: string) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};

emit({
  type: "smoke",
  release: Deno.osRelease(),
  uptime: Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]),
  device: exists("/dev/liveupdate"),
  initrd: exists("/sys/firmware/initrd"),
  khoOut: exists("/sys/kernel/debug/kho/out"),
  cmdline: Deno.readTextFileSync("/proc/cmdline").trim(),
});

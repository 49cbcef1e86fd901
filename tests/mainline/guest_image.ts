/**
 * The guest image for the host-side tests: the kernel (cached outside the repo)
 * and the initramfs (rebuilt once per test process into .build/mainline/, so it
 * always carries the current sources).
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { buildInitramfs } from "./initramfs.ts";
import { type TestKernel, testKernel } from "./kernel.ts";
import { type GuestOptions, type GuestRun, runGuest } from "./qemu.ts";

/** Where the tier keeps its build outputs and serial logs. */
export const BUILD_DIR = fileURLToPath(new URL("../../.build/mainline/", import.meta.url));

let image: Promise<{ kernel: TestKernel; initrd: string }> | undefined;

/** The kernel and a fresh initramfs. Needs -A (runs the build scripts). */
export function guestImage(): Promise<{ kernel: TestKernel; initrd: string }> {
  return image ??= (async () => {
    const kernel = await testKernel();
    const initrd = `${BUILD_DIR}initramfs.cpio`;
    await buildInitramfs({ kernelDir: kernel.dir, output: initrd });
    return { kernel, initrd };
  })();
}

/** Boots the guest running `program` (repository-relative) with the tier's defaults. */
export async function bootGuest(
  name: string,
  program: string,
  options: Partial<GuestOptions> = {},
): Promise<GuestRun & { log: string }> {
  const { kernel, initrd } = await guestImage();
  const log = `${BUILD_DIR}logs/${name}.log`;
  const run = await runGuest({
    kernel: kernel.bzImage,
    initrd,
    timeout: 10 * 60_000,
    log,
    ...options,
    append: [`luotest.program=${program}`, ...(options.append ?? [])],
  });
  return { ...run, log };
}

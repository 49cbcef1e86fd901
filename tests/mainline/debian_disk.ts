/**
 * The per-run disk of the Debian guest, mounted at /opt/liveupdate: this
 * machine's deno, the repository's sources, a DENO_DIR with everything the
 * guest programs import, the test kernel (for `kexec -s -l`) and its handover
 * metadata (liveupdate-abi). Built with
 * `mkfs.ext4 -d` from a temp folder.
 *
 * @module
 */

import { join } from "node:path";
import { copyFile, run, stageRepository } from "./initramfs.ts";
import { abiMetadataText } from "./kernel.ts";

/** What the Debian guest runs (their imports are cached into the disk). */
export const DEBIAN_PROGRAMS = [
  "tests/mainline/debian/driver.ts",
  "examples/memfd_client.ts",
  "agent/main.ts",
];

/** Builds the disk image at `output` (1 GiB, ext4). Needs mkfs.ext4 and -A. */
export async function buildOptDisk(kernelDir: string, output: string): Promise<void> {
  const stage = await Deno.makeTempDir({ prefix: "liveupdate-mainline-opt-" });
  try {
    await copyFile(await Deno.realPath(Deno.execPath()), join(stage, "deno"));
    await Deno.chmod(join(stage, "deno"), 0o755);
    await copyFile(join(kernelDir, "bzImage"), join(stage, "bzImage"));
    // The kernel's handover metadata, installed below /usr/lib/modules by the driver.
    await Deno.writeTextFile(
      join(stage, "liveupdate-abi"),
      await abiMetadataText({ abiMetadata: join(kernelDir, "liveupdate-abi") }),
    );
    await stageRepository(join(stage, "repo"), join(stage, "deno-dir"), DEBIAN_PROGRAMS);
    await Deno.remove(output).catch(() => undefined);
    await run("mkfs.ext4", ["-q", "-F", "-L", "luo-opt", "-d", stage, output, "1G"]);
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

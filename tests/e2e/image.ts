/**
 * The VM tier's image: base root, module and disk, built or taken from the
 * cache under one lock. Run it as the tier's prepare step:
 *
 *     deno run --allow-all tests/e2e/image.ts
 *
 * prints what it built and where, and writes `.build/e2e/image.json`.
 *
 * @module
 */

import { progress } from "./_log.ts";
import { ensureBaseRoot } from "./base_root.ts";
import { withCacheLock } from "./cache.ts";
import { type DiskImage, ensureDisk } from "./disk.ts";
import { ensureModule } from "./module_build.ts";

/** Builds (or finds) everything a VM run boots. Needs root and --allow-all. */
export async function ensureImage(): Promise<DiskImage> {
  return await withCacheLock(async () => {
    const base = await ensureBaseRoot();
    const module = await ensureModule(base);
    return await ensureDisk(base, module);
  });
}

if (import.meta.main) {
  const started = performance.now();
  const image = await ensureImage();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  progress(`image ready (${seconds}s): ${image.path} (kernel ${image.release})`);
  const out = new URL("../../.build/e2e/", import.meta.url).pathname;
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(`${out}image.json`, JSON.stringify(image, null, 2) + "\n");
}

/**
 * Builds the LUO RFC v1 stand-in module (`module/luo_rfc1.c`) and the guest's
 * poll(2) helper inside the base root, against its kernel headers. Cached as
 * `<cache>/module-<key>/`, keyed by the base root and the sources.
 *
 * @module
 */

import { progress } from "./_log.ts";
import type { BaseRoot } from "./base_root.ts";
import { chrootExec } from "./base_root.ts";
import { cacheRoot, exists, hashOf, hashTree, pruneCache, touch } from "./cache.ts";

/** The module's sources in the repository. */
export const MODULE_SOURCES = new URL("./module/", import.meta.url).pathname;

/** The built module and helper. */
export interface ModuleBuild {
  key: string;
  /** `luo_rfc1.ko`, built for the base root's kernel. */
  ko: string;
  /** `luo-poll`, the guest's poll(2) helper. */
  poll: string;
}

const OUTPUTS = ["luo_rfc1.ko", "luo-poll"];

/** Returns the cached build, building first when missing (< 5 s). Call with the cache lock held. */
export async function ensureModule(base: BaseRoot): Promise<ModuleBuild> {
  const sources = await hashTree(MODULE_SOURCES);
  const key = (await hashOf(base.key, sources)).slice(0, 16);
  const dir = `${cacheRoot()}/module-${key}`;
  const result = { key, ko: `${dir}/luo_rfc1.ko`, poll: `${dir}/luo-poll` };
  if (await exists(`${dir}/luo_rfc1.ko`)) {
    await touch(dir);
    return result;
  }

  progress(`building the luo_rfc1 module for ${base.release}`);
  const inside = `/tmp/luo-rfc1-build-${Deno.pid}`;
  const work = `${base.root}${inside}`;
  await Deno.remove(work, { recursive: true }).catch(() => {});
  await Deno.mkdir(work, { recursive: true });
  try {
    for await (const entry of Deno.readDir(MODULE_SOURCES)) {
      if (entry.isFile) {
        await Deno.copyFile(`${MODULE_SOURCES}${entry.name}`, `${work}/${entry.name}`);
      }
    }
    await chrootExec(base.root, [
      "make",
      "-C",
      inside,
      `KDIR=/usr/src/linux-headers-${base.release}`,
      "KCFLAGS=-Werror",
    ]);
    const building = `${dir}.building`;
    await Deno.remove(building, { recursive: true }).catch(() => {});
    await Deno.mkdir(building, { recursive: true });
    for (const name of OUTPUTS) await Deno.copyFile(`${work}/${name}`, `${building}/${name}`);
    await Deno.rename(building, dir);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  await pruneCache("module-", `module-${key}`, 24 * 3600_000);
  return result;
}

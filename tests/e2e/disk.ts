/**
 * The disk image a VM boots: the base root with the run's layer on top (the
 * agent, the module, the harness), made with `mkfs.ext4 -d` (no loop devices).
 * Cached as `<cache>/disk-<key>.img`, keyed by the base root, the module and
 * the layer's contents, so an unchanged checkout boots without rebuilding.
 *
 * The base root is never written: the merged tree is a hard-link copy in which
 * every added file replaces (never overwrites) what the base has.
 *
 * @module
 */

import { progress } from "./_log.ts";
import { exec } from "./_exec.ts";
import type { BaseRoot } from "./base_root.ts";
import { cacheRoot, exists, hashOf, hashTree, pruneCache, touch } from "./cache.ts";
import { stageLayer } from "./layer.ts";
import type { ModuleBuild } from "./module_build.ts";

/** Size of the (sparse) disk image: the root plus room for journals and records. */
const DISK_SIZE = "3G";

/** What only building the module needed, left out of the disk (paths below the root). */
function strippedPaths(release: string): string[] {
  const drivers = `usr/lib/modules/${release}/kernel`;
  return [
    "usr/src",
    "usr/include",
    "usr/lib/gcc",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    `usr/lib/modules/${release}/build`,
    `usr/lib/modules/${release}/source`,
    `${drivers}/sound`,
    ...["gpu", "media", "net/wireless", "net/ethernet", "infiniband", "staging", "bluetooth"]
      .map((dir) => `${drivers}/drivers/${dir}`),
  ];
}

/** A bootable disk image and the kernel to boot it with. */
export interface DiskImage {
  key: string;
  /** The raw ext4 image (boot it with snapshot=on: it is shared by every run). */
  path: string;
  vmlinuz: string;
  initrd: string;
  release: string;
  /** The agent's units found in the repository (installed and preset). */
  agentUnits: string[];
}

/**
 * Returns the disk image for the current checkout, building it when missing
 * (≈ 20–60 s). Call with the cache lock held; needs root and --allow-all.
 */
export async function ensureDisk(base: BaseRoot, module: ModuleBuild): Promise<DiskImage> {
  const layer = await stageLayer(module, base.release);
  const farm = `${cacheRoot()}/farm-${Deno.pid}`;
  try {
    const self = await Deno.readFile(new URL(import.meta.url));
    const key = (await hashOf(base.key, module.key, await hashTree(layer.dir), self)).slice(0, 16);
    const path = `${cacheRoot()}/disk-${key}.img`;
    const image: DiskImage = {
      key,
      path,
      vmlinuz: base.vmlinuz,
      initrd: base.initrd,
      release: base.release,
      agentUnits: layer.agentUnits,
    };
    if (await exists(path)) {
      await touch(path);
      return image;
    }

    const started = performance.now();
    progress(`building the disk image ${path}`);
    await Deno.remove(farm, { recursive: true }).catch(() => {});
    await exec(["cp", "-al", base.root, farm]);
    for (const stripped of strippedPaths(base.release)) {
      await Deno.remove(`${farm}/${stripped}`, { recursive: true }).catch(() => {});
    }
    // --remove-destination: a file of the base is replaced, never written through its hard link.
    await exec(["cp", "-a", "--remove-destination", `${layer.dir}/.`, `${farm}/`]);
    await exec(["depmod", "-b", farm, base.release]);
    await exec(["systemctl", `--root=${farm}`, "enable", ...layer.harnessUnits]);
    if (layer.agentUnits.length > 0) {
      await exec(["systemctl", `--root=${farm}`, "preset", ...layer.agentUnits]);
    }
    const building = `${path}.building`;
    await exec(["mkfs.ext4", "-q", "-F", "-L", "luo-e2e", "-d", farm, building, DISK_SIZE]);
    await Deno.rename(building, path);
    progress(`disk image ready in ${((performance.now() - started) / 1000).toFixed(0)}s`);
    await pruneCache("disk-", `disk-${key}`, 24 * 3600_000);
    return image;
  } finally {
    await Deno.remove(farm, { recursive: true }).catch(() => {});
    await Deno.remove(layer.dir, { recursive: true }).catch(() => {});
  }
}

/**
 * The files the VM tier adds to the base root for a run: the agent installed as
 * an OS image holds it (units, udev rules, default configuration, the agent's
 * source with Deno and a pre-populated DENO_DIR, the launcher), the luo_rfc1
 * module, and the guest side of the test harness (tests/e2e/guest/).
 *
 * @module
 */

import { exec } from "./_exec.ts";
import { cacheRoot, exists, hashOf, pruneCache, touch } from "./cache.ts";
import { GUEST_PATHS, launcherScript } from "./launcher.ts";
import type { ModuleBuild } from "./module_build.ts";

const repo = new URL("../../", import.meta.url).pathname;
const guest = new URL("./guest/", import.meta.url).pathname;

/** Units (and their kin) copied from the repository's `units/`, by file name suffix. */
const UNIT_SUFFIXES = [".service", ".target", ".socket", ".timer", ".path"];

/** What a staged layer holds besides its files. */
export interface Layer {
  /** The staging directory: a tree to copy over the root. */
  dir: string;
  /** The agent's units (file names) to enable with presets, as an image build does. */
  agentUnits: string[];
  /** Units of the harness to enable. */
  harnessUnits: string[];
}

async function put(dir: string, path: string, data: string | Uint8Array, mode = 0o644) {
  const target = `${dir}${path}`;
  await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
  if (typeof data === "string") await Deno.writeTextFile(target, data);
  else await Deno.writeFile(target, data);
  await Deno.chmod(target, mode);
}

async function copy(dir: string, path: string, source: string, mode?: number) {
  const info = await Deno.stat(source);
  await put(dir, path, await Deno.readFile(source), mode ?? ((info.mode ?? 0o644) & 0o777));
}

async function copyTree(
  dir: string,
  path: string,
  source: string,
  skip: (name: string) => boolean = () => false,
) {
  for await (const entry of Deno.readDir(source)) {
    if (skip(entry.name)) continue;
    if (entry.isDirectory) {
      await copyTree(dir, `${path}/${entry.name}`, `${source}/${entry.name}`, skip);
    } else if (entry.isFile) {
      await copy(dir, `${path}/${entry.name}`, `${source}/${entry.name}`);
    }
  }
}

/**
 * The npm packages the agent imports, cached for Deno (`deno install` into a
 * fresh DENO_DIR), keyed by the lock file and Deno's version. Needs the npm
 * registry on a cold cache; call with the cache lock held.
 */
async function denoDir(): Promise<string> {
  const lock = await Deno.readFile(`${repo}deno.lock`);
  const config = await Deno.readFile(`${repo}deno.json`);
  const key = (await hashOf(lock, config, Deno.version.deno)).slice(0, 16);
  const dir = `${cacheRoot()}/deno-dir-${key}`;
  if (await exists(`${dir}/npm`)) {
    await touch(dir);
    return dir;
  }
  const building = `${dir}.building`;
  await Deno.remove(building, { recursive: true }).catch(() => {});
  await exec([Deno.execPath(), "install", "--frozen"], {
    cwd: repo,
    env: { DENO_DIR: building, DENO_NO_UPDATE_CHECK: "1" },
  });
  await Deno.rename(building, dir);
  await pruneCache("deno-dir-", `deno-dir-${key}`, 24 * 3600_000);
  return dir;
}

/**
 * Stages the layer into a new temporary directory (the caller removes it).
 * `release` is the guest kernel's. Call with the cache lock held; needs --allow-all.
 */
export async function stageLayer(module: ModuleBuild, release: string): Promise<Layer> {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-vm-layer-" });
  const agentUnits: string[] = [];

  // The agent, from source, with Deno and its npm packages.
  await copyTree(dir, `${GUEST_PATHS.home}/agent`, `${repo}agent`, (n) => n.endsWith("_test.ts"));
  await copy(dir, `${GUEST_PATHS.home}/deno.json`, `${repo}deno.json`, 0o644);
  await copy(dir, `${GUEST_PATHS.home}/deno.lock`, `${repo}deno.lock`, 0o644);
  await copy(dir, GUEST_PATHS.deno, Deno.execPath(), 0o755);
  await copyTree(dir, `${GUEST_PATHS.denoDir}/npm`, `${await denoDir()}/npm`);
  await put(dir, "/usr/bin/liveupdate-agent", launcherScript(), 0o755);

  // Units, udev rules and configuration where the Containerfile's image puts them.
  if (await exists(`${repo}units`)) {
    for await (const entry of Deno.readDir(`${repo}units`)) {
      if (!entry.isFile) continue;
      const source = `${repo}units/${entry.name}`;
      if (UNIT_SUFFIXES.some((suffix) => entry.name.endsWith(suffix))) {
        await copy(dir, `/usr/lib/systemd/system/${entry.name}`, source, 0o644);
        agentUnits.push(entry.name);
      } else if (entry.name.endsWith(".preset")) {
        await copy(dir, `/usr/lib/systemd/system-preset/${entry.name}`, source, 0o644);
      } else if (entry.name.endsWith(".catalog")) {
        await copy(dir, `/usr/lib/systemd/catalog/${entry.name}`, source, 0o644);
      }
    }
  }
  if (await exists(`${repo}config/70-liveupdate.rules`)) {
    await copy(
      dir,
      "/usr/lib/udev/rules.d/70-liveupdate.rules",
      `${repo}config/70-liveupdate.rules`,
    );
  }
  await copy(
    dir,
    "/usr/lib/liveupdate/config.d/00-defaults.toml",
    `${repo}config/00-defaults.toml`,
  );
  await copy(dir, "/usr/share/doc/liveupdate-agent/example.toml", `${repo}config/example.toml`);

  // The LUO stand-in, loaded at boot.
  await copy(dir, `/usr/lib/modules/${release}/updates/luo_rfc1.ko`, module.ko, 0o644);
  await copy(dir, "/usr/lib/modules-load.d/luo_rfc1.conf", `${guest}luo_rfc1.conf`, 0o644);
  await copy(
    dir,
    "/usr/lib/systemd/system-shutdown/luo-rfc1-reboot",
    `${guest}luo-rfc1-reboot`,
    0o755,
  );

  // The harness: the scenario driver and its helpers, the site's udev policy.
  await copy(dir, "/usr/lib/luo-e2e/run", `${guest}run`, 0o755);
  await copy(dir, "/usr/lib/luo-e2e/lib.sh", `${guest}lib.sh`, 0o644);
  await copy(dir, "/usr/lib/luo-e2e/luo-poll", module.poll, 0o755);
  await copy(dir, "/usr/lib/systemd/system/luo-e2e.service", `${guest}luo-e2e.service`, 0o644);
  await copy(dir, "/etc/udev/rules.d/71-luo-e2e.rules", `${guest}71-luo-e2e.rules`, 0o644);
  // The workload the agent scenarios move through the update phases (not enabled).
  await copy(
    dir,
    "/usr/lib/systemd/system/e2e-workload.service",
    `${guest}e2e-workload.service`,
    0o644,
  );

  return { dir, agentUnits: agentUnits.sort(), harnessUnits: ["luo-e2e.service"] };
}

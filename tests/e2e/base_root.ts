/**
 * The guest's Debian bookworm root (debootstrap, minbase): systemd as PID 1,
 * udev, D-Bus, kexec-tools, Debian's kernel and its headers (for building the
 * module), configured for a fast serial-console boot under qemu. Cached as
 * `<cache>/base-<key>/`, keyed by the suite, the package list, debootstrap's
 * version and this file.
 *
 * @module
 */

import { progress } from "./_log.ts";
import { exec } from "./_exec.ts";
import { cacheRoot, exists, hashOf, pruneCache, touch } from "./cache.ts";

/** The Debian suite of the guest. */
export const SUITE = "bookworm";

/** What debootstrap installs besides minbase. */
export const PACKAGES: readonly string[] = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "udev",
  "kexec-tools",
  "linux-image-amd64",
  "linux-headers-amd64",
  "gcc",
  "make",
  "libc6-dev",
  "kmod",
  "procps",
];

/** Units that slow a test boot down or get in its way (masked). */
export const MASKED_UNITS: readonly string[] = [
  // Its hang-up on ttyS0 cuts the serial console the test reads.
  "serial-getty@ttyS0.service",
  "getty@tty1.service",
  // kexec-tools' own scripts would load a kernel over the one under test.
  "kexec.service",
  "kexec-load.service",
  "apt-daily.timer",
  "apt-daily-upgrade.timer",
  "dpkg-db-backup.timer",
  "e2scrub_all.timer",
  "e2scrub_reap.service",
  "fstrim.timer",
  "systemd-pstore.service",
];

/** Modules the (small) initramfs holds: enough to mount the root on virtio. */
const INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "ext4", "crc32c_generic", "crc32c_intel"];

/** A built base root and the kernel to boot it with. */
export interface BaseRoot {
  key: string;
  /** The cache entry (holds `root/`, `vmlinuz`, `initrd.img`, `base.json`). */
  dir: string;
  root: string;
  /** The guest kernel's release (`uname -r`). */
  release: string;
  vmlinuz: string;
  initrd: string;
}

function mirror(): string {
  return Deno.env.get("LIVEUPDATE_VM_MIRROR") ?? "http://deb.debian.org/debian";
}

/**
 * Runs `command` chrooted into `root`, with /proc, /sys and /dev mounted in a
 * private mount namespace that disappears with the command.
 */
export async function chrootExec(root: string, command: string[]): Promise<string> {
  const script = [
    'root="$1"; shift',
    'mount -t proc proc "$root/proc"',
    'mount -t sysfs sys "$root/sys"',
    'mount --rbind /dev "$root/dev"',
    'exec chroot "$root" "$@"',
  ].join("\n");
  return await exec(
    [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--",
      "sh",
      "-ec",
      script,
      "sh",
      root,
      ...command,
    ],
    {
      env: {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        DEBIAN_FRONTEND: "noninteractive",
        LC_ALL: "C",
      },
    },
  );
}

async function baseKey(): Promise<string> {
  // What the root is made of: the package list, the debootstrap that installs it,
  // and the configuration steps (their code, not this file's comments).
  const debootstrap = (await exec(["debootstrap", "--version"])).trim();
  const recipe = [PACKAGES, MASKED_UNITS, INITRAMFS_MODULES, configure.toString()];
  return (await hashOf(SUITE, debootstrap, JSON.stringify(recipe))).slice(0, 16);
}

/**
 * The environment for debootstrap's downloads: apt's HTTP proxy, when the host's
 * apt has one and no http_proxy is set (debootstrap downloads with wget, which
 * does not read apt's configuration).
 */
async function downloadEnv(): Promise<Record<string, string>> {
  const env: Record<string, string> = { LC_ALL: "C", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
  for (const name of ["http_proxy", "https_proxy", "no_proxy"]) {
    const value = Deno.env.get(name);
    if (value) env[name] = value;
  }
  if (!env.http_proxy) {
    const shell = await exec(["apt-config", "shell", "PROXY", "Acquire::http::Proxy"]).catch(() =>
      ""
    );
    const proxy = /^PROXY='(.+)'$/m.exec(shell)?.[1];
    if (proxy && proxy !== "DIRECT") env.http_proxy = proxy;
  }
  return env;
}

async function debootstrap(root: string): Promise<void> {
  const debs = `${cacheRoot()}/debs`;
  await Deno.mkdir(debs, { recursive: true });
  const command = [
    "debootstrap",
    `--cache-dir=${debs}`,
    "--variant=minbase",
    `--include=${PACKAGES.join(",")}`,
    SUITE,
    root,
    mirror(),
  ];
  const env = await downloadEnv();
  // Mirrors drop a download now and then; the deb cache makes a retry cheap.
  for (let attempt = 1;; attempt++) {
    try {
      await exec(command, { env });
      return;
    } catch (error) {
      if (attempt >= 3) throw error;
      progress(
        `debootstrap failed (attempt ${attempt}), retrying: ${String(error).split("\n")[0]}`,
      );
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  }
}

async function writeFile(path: string, text: string, mode = 0o644): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.remove(path).catch(() => {});
  await Deno.writeTextFile(path, text, { mode });
  await Deno.chmod(path, mode);
}

async function configure(root: string): Promise<void> {
  await writeFile(`${root}/etc/hostname`, "luo-e2e\n");
  await writeFile(`${root}/etc/hosts`, "127.0.0.1 localhost\n127.0.1.1 luo-e2e\n");
  await writeFile(`${root}/etc/fstab`, "/dev/vda / ext4 rw,errors=remount-ro 0 1\n");
  for (const unit of MASKED_UNITS) {
    const link = `${root}/etc/systemd/system/${unit}`;
    await Deno.remove(link).catch(() => {});
    await Deno.symlink("/dev/null", link);
  }
  await writeFile(
    `${root}/etc/default/kexec`,
    "# The VM tier loads kernels itself: kexec-tools' scripts must not.\nLOAD_KEXEC=false\n",
  );
  // The journal survives the kexec (and a cold reboot) so the last boot can dump all of them.
  await Deno.mkdir(`${root}/var/log/journal`, { recursive: true });
  await writeFile(
    `${root}/etc/systemd/journald.conf.d/50-luo-e2e.conf`,
    "[Journal]\nStorage=persistent\nForwardToConsole=no\n",
  );
  // A small initramfs: less to decompress under emulation, and to load with kexec.
  await writeFile(
    `${root}/etc/initramfs-tools/conf.d/50-luo-e2e.conf`,
    "MODULES=list\nCOMPRESS=zstd\n",
  );
  await writeFile(`${root}/etc/initramfs-tools/modules`, INITRAMFS_MODULES.join("\n") + "\n");
  await chrootExec(root, ["update-initramfs", "-u", "-k", "all"]);
  await chrootExec(root, ["systemctl", "set-default", "multi-user.target"]);
  await chrootExec(root, ["apt-get", "clean"]);
  for await (const entry of Deno.readDir(`${root}/var/lib/apt/lists`)) {
    if (entry.isFile) await Deno.remove(`${root}/var/lib/apt/lists/${entry.name}`);
  }
}

async function kernelRelease(root: string): Promise<string> {
  const releases: string[] = [];
  for await (const entry of Deno.readDir(`${root}/usr/lib/modules`)) releases.push(entry.name);
  if (releases.length !== 1) {
    throw new Error(
      `Expected one kernel in ${root}/usr/lib/modules, found ${JSON.stringify(releases)}`,
    );
  }
  return releases[0]!;
}

function describe(key: string, dir: string, release: string): BaseRoot {
  return {
    key,
    dir,
    root: `${dir}/root`,
    release,
    vmlinuz: `${dir}/vmlinuz`,
    initrd: `${dir}/initrd.img`,
  };
}

/**
 * Returns the cached base root, building it first when missing (≈ 2–5 min).
 * Call with the cache lock held. Needs root, network to the Debian mirror on a
 * cold cache, and --allow-all.
 */
export async function ensureBaseRoot(): Promise<BaseRoot> {
  const key = await baseKey();
  const dir = `${cacheRoot()}/base-${key}`;
  if (await exists(`${dir}/base.json`)) {
    const { release } = JSON.parse(await Deno.readTextFile(`${dir}/base.json`));
    await touch(dir);
    return describe(key, dir, release);
  }
  const building = `${dir}.building`;
  await Deno.remove(building, { recursive: true }).catch(() => {});
  await Deno.mkdir(building, { recursive: true });
  const started = performance.now();
  progress(`building the Debian ${SUITE} base root ${building} (debootstrap)`);
  await debootstrap(`${building}/root`);
  progress(
    `debootstrap done in ${((performance.now() - started) / 1000).toFixed(0)}s; configuring`,
  );
  await configure(`${building}/root`);
  const release = await kernelRelease(`${building}/root`);
  await Deno.copyFile(`${building}/root/boot/vmlinuz-${release}`, `${building}/vmlinuz`);
  await Deno.copyFile(`${building}/root/boot/initrd.img-${release}`, `${building}/initrd.img`);
  await Deno.writeTextFile(`${building}/base.json`, JSON.stringify({ release, key }) + "\n");
  await Deno.rename(building, dir);
  progress(`base root ready in ${((performance.now() - started) / 1000).toFixed(0)}s: ${dir}`);
  await pruneCache("base-", `base-${key}`, 24 * 3600_000);
  return describe(key, dir, release);
}

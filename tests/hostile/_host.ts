/**
 * A whole host on plain files for the hostile-input corpus: a sysfs tree
 * (`writePlainSysfs`), its udev database, procfs facts, an incoming KHO tree in
 * debugfs, kernel metadata, a target image, a kexec stand-in, a state, runtime and
 * metrics directory, and a configuration root pointing the agent at all of it.
 * Each case gets a fresh one, plants its malformed input, and runs the real CLI
 * (`deno run agent/main.ts`) as a subprocess against it.
 *
 * There is no systemd here: `systemd.bus_address` names a socket nobody listens
 * on, so a command that reaches the manager fails with a clear error, which is
 * fine for inputs that must be refused before that.
 *
 * @module
 */

import { fakeBzImage } from "../kho/bzimage.ts";
import { khoTree } from "../kho/fdt_builder.ts";
import { type SimTree, writePlainSysfs, writeUdevDb } from "../sim/tree.ts";

export const RUNNING_RELEASE = "6.19.0-hostile-old";
export const TARGET_RELEASE = "6.19.1-hostile-new";

/** One root port with two vfio functions (one tagged), as the update rig has. */
export function hostileTree(): SimTree {
  const port = "pci0000:00/0000:00:01.0";
  const vfio = (path: string, tagged: boolean) => ({
    path,
    subsystem: "pci",
    driver: "vfio-pci",
    busSupport: true,
    driverSupport: true,
    uevent: { DRIVER: "vfio-pci", PCI_SLOT_NAME: path.split("/").at(-1)! },
    ...(tagged ? { tags: ["liveupdate"], udevProperties: { LIVEUPDATE_UNIT: "vm.service" } } : {}),
  });
  return {
    devices: [
      { path: "pci0000:00", busSupport: true, driverSupport: true, uevent: {} },
      {
        path: port,
        subsystem: "pci",
        driver: "pcieport",
        busSupport: true,
        driverSupport: true,
        uevent: { DRIVER: "pcieport" },
      },
      vfio(`${port}/0000:01:00.0`, true),
      vfio(`${port}/0000:01:00.1`, false),
      {
        path: "virtual/misc/tun",
        subsystem: "misc",
        busSupport: false,
        driverSupport: false,
        devnum: { kind: "c", major: 10, minor: 200 },
        uevent: { MAJOR: "10", MINOR: "200", DEVNAME: "net/tun" },
      },
    ],
  };
}

/** The tagged device of {@link hostileTree}, and its udev id. */
export const TAGGED = "pci0000:00/0000:00:01.0/0000:01:00.0";
export const TAGGED_ID = "+pci:0000:01:00.0";

/** Where everything of one host lives. */
export interface HostileHost {
  dir: string;
  sysfs: string;
  udev: string;
  proc: string;
  debugfs: string;
  modules: string;
  boot: string;
  kernel: string;
  state: string;
  run: string;
  metricsDir: string;
  metrics: string;
  configRoot: string;
  /** The host's drop-in (`<configRoot>/etc/liveupdate/config.d/50-host.toml`). */
  configFile: string;
  /** A file outside every path the agent may write, holding a secret (a stand-in for /etc/shadow). */
  secret: string;
  /** The TOML of the host's drop-in. */
  configText: string;
}

async function write(path: string, data: string | Uint8Array, mode?: number): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof data === "string") await Deno.writeTextFile(path, data);
  else await Deno.writeFile(path, data);
  if (mode !== undefined) await Deno.chmod(path, mode);
}

/** Builds a fresh host below a new temporary directory. */
export async function makeHost(): Promise<HostileHost> {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-hostile-" });
  const tree = hostileTree();
  const host: HostileHost = {
    dir,
    sysfs: `${dir}/sys`,
    udev: `${dir}/udev`,
    proc: `${dir}/proc`,
    debugfs: `${dir}/debug`,
    modules: `${dir}/modules`,
    boot: `${dir}/boot`,
    kernel: `${dir}/boot/vmlinuz-${TARGET_RELEASE}`,
    state: `${dir}/state`,
    run: `${dir}/run`,
    metricsDir: `${dir}/metrics`,
    metrics: `${dir}/metrics/liveupdate.prom`,
    configRoot: `${dir}/root`,
    configFile: `${dir}/root/etc/liveupdate/config.d/50-host.toml`,
    secret: `${dir}/etc-shadow`,
    configText: "",
  };
  await writePlainSysfs(tree, host.sysfs);
  await writeUdevDb(tree, host.udev);
  await write(
    `${host.proc}/cmdline`,
    "BOOT_IMAGE=/vmlinuz root=/dev/vda ro liveupdate=on kho=on\n",
  );
  await write(`${host.proc}/sys/kernel/osrelease`, `${RUNNING_RELEASE}\n`);
  await write(`${host.proc}/uptime`, "1234.56 2000.00\n");
  await write(
    `${host.proc}/sys/kernel/random/boot_id`,
    "0f3b6c2e-9a41-4d7b-8c55-2f1e0a9d7b31\n",
  );
  await write(`${host.proc}/sys/kernel/hostname`, "hostile\n");
  await write(`${host.debugfs}/kho/in/fdt`, khoTree());
  await write(`${host.modules}/${RUNNING_RELEASE}/liveupdate-abi`, "LUO_VERSION=1.0\n");
  await write(`${host.modules}/${TARGET_RELEASE}/liveupdate-abi`, "LUO_VERSION=1.0\n");
  await write(host.kernel, fakeBzImage({ version: `${TARGET_RELEASE} (hostile@test) #1 SMP` }));
  await write(`${dir}/bin/kexec`, "#!/bin/sh\nexit 0\n", 0o755);
  await Deno.mkdir(host.metricsDir);
  await write(host.secret, "root:$6$not-a-real-hash:19000:0:99999:7:::\n", 0o600);
  host.configText = [
    "[paths]",
    `sysfs = "${host.sysfs}"`,
    `proc = "${host.proc}"`,
    `udev_db = "${host.udev}"`,
    `debugfs = "${host.debugfs}"`,
    `state_dir = "${host.state}"`,
    `runtime_dir = "${host.run}"`,
    "[systemd]",
    `bus_address = "unix:path=${dir}/no-bus"`,
    "[target]",
    `kernel = "${host.kernel}"`,
    "[compat]",
    `modules_dir = "${host.modules}"`,
    "[kexec]",
    `binary = "${dir}/bin/kexec"`,
    "[metrics]",
    `file = "${host.metrics}"`,
    "",
  ].join("\n");
  await write(host.configFile, host.configText);
  return host;
}

/** `path` relative to the host's directory, or undefined when outside it. */
export function inHost(host: HostileHost, path: string): string | undefined {
  return path === host.dir || path.startsWith(`${host.dir}/`)
    ? path.slice(host.dir.length + 1)
    : undefined;
}

/**
 * Whether the agent may write `path` of `host`: the live-update files below the
 * sysfs root, the state and runtime directories, the metrics file (and its
 * temporary files beside it).
 */
export function writeAllowed(host: HostileHost, path: string): boolean {
  if (path.startsWith(`${host.sysfs}/`)) {
    const relative = path.slice(host.sysfs.length + 1);
    return /^kernel\/liveupdate\/(prepare|finish)$/.test(relative) ||
      /^devices\/(?:[^/]+\/)+liveupdate\/requested$/.test(relative);
  }
  if (path === host.state || path.startsWith(`${host.state}/`)) return true;
  if (path === host.run || path.startsWith(`${host.run}/`)) return true;
  if (path === host.metrics) return true;
  return path.startsWith(`${host.metricsDir}/.liveupdate.prom.tmp-`);
}

/** What is at each path below `dir` (type, mode, size and contents), for before/after comparison. */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  const walk = async (path: string) => {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      return;
    }
    const mode = (info.mode ?? 0) & 0o7777;
    if (info.isSymlink) {
      result.set(path, `link ${await Deno.readLink(path)}`);
    } else if (info.isDirectory) {
      result.set(path, `dir ${mode.toString(8)}`);
      for await (const entry of Deno.readDir(path)) await walk(`${path}/${entry.name}`);
    } else if (info.isFile) {
      const bytes = info.size <= 1 << 20 ? await Deno.readFile(path) : new Uint8Array();
      const digest = await crypto.subtle.digest("SHA-256", bytes);
      const hash = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"))
        .join("");
      result.set(path, `file ${mode.toString(8)} ${info.size} ${hash}`);
    } else {
      result.set(path, `other ${mode.toString(8)}`);
    }
  };
  await walk(dir);
  return result;
}

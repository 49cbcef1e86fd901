/**
 * The Deno permission flags the agent runs under: in the compiled binary
 * (`deno task compile`, the Containerfile), in the launcher the VM tier installs,
 * and in the test that proves the agent works with exactly these and no more
 * (tests/integration/exact_permissions_test.ts). One list, so the three cannot
 * drift apart.
 *
 * The read and write lists name only what the agent reaches through Deno's own
 * file API. Deno refuses that API for every path under /sys, /proc and /dev
 * unless the process has `--allow-all` (denoland/deno#27564), so the kernel's
 * files — sysfs (live-update attributes, device links and flags), procfs
 * (cmdline, osrelease, uptime, boot_id, hostname), debugfs (the incoming KHO
 * tree), `/dev/liveupdate` — are read and written through libc (`KernelFs`), as
 * are the udev database, the update lock and the sd_notify and journal sockets.
 * FFI is not path-checked by Deno: for those paths the service unit's sandbox
 * (ReadWritePaths=, ProtectKernelTunables=, DevicePolicy=, …) is the real
 * boundary, and `--allow-ffi` is all or nothing.
 *
 * @module
 */

/** Paths the agent reads through Deno's file API in production. */
export const READ_PATHS = [
  // Configuration drop-ins (agent/config/load.ts DROP_IN_DIRS); the fleet's TLS and
  // password files belong under /etc/liveupdate too.
  "/usr/lib/liveupdate",
  "/etc/liveupdate",
  "/run/liveupdate",
  // paths.state_dir: attempt records, the record of requested devices.
  "/var/lib/liveupdate",
  // compat.modules_dir: each kernel's liveupdate-abi metadata.
  "/usr/lib/modules",
  // target.kernel and target.initrd: the image's boot header names its release.
  "/boot",
  // kexec.binary: the update flow's preflight checks that it is an executable file.
  "/usr/sbin/kexec",
  // kexec.tools_defaults and its .d folder: on mainline kernels preflight refuses an
  // update while kexec-tools' shutdown loader is on (LOAD_KEXEC=true).
  "/etc/default/kexec",
  "/etc/default/kexec.d",
  // The system bus: dbus-next connects through node:net, which checks the socket path.
  "/run/dbus/system_bus_socket",
  // fleet.machine_id_file: the default fleet host id derives from it.
  "/etc/machine-id",
  // The metrics file's directory (metrics.file): atomic writes fsync the directory.
  "/var/lib/prometheus/node-exporter",
] as const;

/** Paths the agent writes through Deno's file API in production. */
export const WRITE_PATHS = [
  // paths.state_dir and paths.runtime_dir (records, fleet.json).
  "/var/lib/liveupdate",
  "/run/liveupdate",
  "/run/dbus/system_bus_socket",
  "/var/lib/prometheus/node-exporter",
] as const;

/** Programs the agent runs, by absolute path (kexec.binary). */
export const RUN_PATHS = ["/usr/sbin/kexec"] as const;

/** Environment variables the agent reads (a test checks every `env.get` is listed). */
export const ENV_VARS = [
  // The logger: journal format when stderr is the journal; no colour when set.
  "JOURNAL_STREAM",
  "NO_COLOR",
  // sd_notify and the watchdog (agent/systemd/notify.ts).
  "NOTIFY_SOCKET",
  "WATCHDOG_USEC",
  "WATCHDOG_PID",
  // The update flow (agent/update/): the unit invocation an attempt ran in, and the
  // crash-injection hook of the crash tests.
  "INVOCATION_ID",
  "LIVEUPDATE_AGENT_CRASH_AT",
] as const;

/** Unix sockets the agent connects to through Deno (the system bus, for dbus-next). */
export const UNIX_SOCKETS = ["/run/dbus/system_bus_socket"] as const;

/**
 * What `--allow-sys` grants: the uid, which dbus-next's EXTERNAL authentication
 * reads. The running release and the host name come from procfs (`ProcFacts`).
 */
export const SYS_APIS = ["uid"] as const;

/**
 * The network flag: by default only the unix sockets the agent uses (the system
 * bus). The fleet layer connects to etcd members or a FleetLock server whose
 * addresses are site configuration (`fleet.etcd.endpoints`, `fleet.fleetlock.url`),
 * so a site that uses fleet rollouts builds its binary with those hosts:
 * `deno task compile --net-host=etcd-1.example:2379 …`. The binary then reaches
 * exactly those `host:port`s (and the unix sockets); any other endpoint fails with
 * an error saying how to rebuild. The unit confines the agent in the kernel too
 * (`IPAddressDeny=any` with a per-site `IPAddressAllow=` drop-in).
 */
export function netFlag(hosts: readonly string[] = []): string {
  return `--allow-net=${[...UNIX_SOCKETS.map((path) => `unix:${path}`), ...hosts].join(",")}`;
}

/** The permission flags, in the order `deno compile` and `deno run` take them. */
export function permissionFlags(options: { netHosts?: readonly string[] } = {}): string[] {
  return [
    `--allow-read=${READ_PATHS.join(",")}`,
    `--allow-write=${WRITE_PATHS.join(",")}`,
    netFlag(options.netHosts),
    `--allow-sys=${SYS_APIS.join(",")}`,
    `--allow-env=${ENV_VARS.join(",")}`,
    `--allow-run=${RUN_PATHS.join(",")}`,
    // libc through FFI: the kernel's files, poll(2), ioctl(2), sd_notify, the update
    // lock. Deno cannot scope it usefully (a library loaded by soname; FFI can do anything).
    "--allow-ffi",
  ];
}

/** The permission flags of the default build. */
export const PERMISSION_FLAGS: readonly string[] = permissionFlags();

/** The default build's flags as a Markdown table (a generated README section). */
export function permissionTable(): string {
  const rows = PERMISSION_FLAGS.map((flag) => {
    const [name, value] = flag.split(/=(.*)/s);
    const values = value === undefined
      ? "everything (libc)"
      : value.split(",").map((item) => `\`${item}\``).join(", ");
    return `| \`${name}\` | ${values} |`;
  });
  return ["| flag | grants |", "| --- | --- |", ...rows, ""].join("\n");
}

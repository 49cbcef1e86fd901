/**
 * The Deno permission flags the agent runs under: in the compiled binary
 * (`deno task compile`, the Containerfile), in the launcher the VM tier installs,
 * and in the test that proves the agent works with exactly these and no more.
 * One list, so the three cannot drift apart.
 *
 * @module
 */

/** Paths the agent reads in production. */
export const READ_PATHS = [
  "/usr/lib/liveupdate",
  "/etc/liveupdate",
  "/run/liveupdate",
  "/var/lib/liveupdate",
  "/sys",
  "/proc/cmdline",
  "/run/udev",
  "/usr/lib/modules",
  "/boot",
  "/dev/liveupdate",
  "/run/dbus/system_bus_socket",
  "/run/systemd/notify",
  "/run/systemd/journal/socket",
  // The fleet layer: the default host id derives from the machine id; holders show the host name.
  "/etc/machine-id",
  "/proc/sys/kernel/hostname",
] as const;

/** Paths the agent writes in production (sysfs writes are confined further by the agent). */
export const WRITE_PATHS = [
  "/sys/kernel/liveupdate",
  "/sys/devices",
  "/var/lib/liveupdate",
  "/run/liveupdate",
  "/run/dbus/system_bus_socket",
  "/run/systemd/notify",
  "/run/systemd/journal/socket",
  "/dev/liveupdate",
  "/var/lib/prometheus/node-exporter",
] as const;

/** Programs the agent runs, by absolute path. */
export const RUN_PATHS = ["/usr/sbin/kexec"] as const;

/** Environment variables the agent reads. */
export const ENV_VARS = [
  "JOURNAL_STREAM",
  "NOTIFY_SOCKET",
  "WATCHDOG_USEC",
  "WATCHDOG_PID",
  "NO_COLOR",
  "INVOCATION_ID",
] as const;

/** Unix sockets the agent connects to. */
export const UNIX_SOCKETS = ["/run/dbus/system_bus_socket"] as const;

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
    "--allow-sys=uid,osRelease,hostname",
    `--allow-env=${ENV_VARS.join(",")}`,
    `--allow-run=${RUN_PATHS.join(",")}`,
    "--allow-ffi",
  ];
}

/** The permission flags of the default build. */
export const PERMISSION_FLAGS: readonly string[] = permissionFlags();

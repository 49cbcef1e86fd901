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
export const ENV_VARS = ["JOURNAL_STREAM", "NOTIFY_SOCKET", "NO_COLOR", "INVOCATION_ID"] as const;

/** The permission flags, in the order `deno compile` and `deno run` take them. */
export const PERMISSION_FLAGS: readonly string[] = [
  `--allow-read=${READ_PATHS.join(",")}`,
  `--allow-write=${WRITE_PATHS.join(",")}`,
  "--allow-net=unix:/run/dbus/system_bus_socket",
  "--allow-sys=uid,osRelease,hostname",
  `--allow-env=${ENV_VARS.join(",")}`,
  `--allow-run=${RUN_PATHS.join(",")}`,
  "--allow-ffi",
];

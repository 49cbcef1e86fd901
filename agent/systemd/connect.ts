/**
 * Connecting the systemd layer the way commands do: the host's D-Bus connector and
 * the configured bus address (`systemd.bus_address`).
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import type { Host } from "../host/host.ts";
import { SystemdManager } from "./manager.ts";

/**
 * Connects to systemd's manager at `config.systemd.bus_address` through
 * `host.dbus`. Needs `--allow-net=unix:SOCKET`, read+write on the socket and
 * `--allow-sys=uid` (the production flags allow the system bus socket).
 */
export function connectSystemd(
  host: Pick<Host, "dbus">,
  config: Pick<Config, "systemd">,
): Promise<SystemdManager> {
  return SystemdManager.connect(host.dbus, config.systemd.bus_address);
}

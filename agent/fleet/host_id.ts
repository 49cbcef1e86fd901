/**
 * This host's id in the fleet. By default it is derived from the machine id the
 * way systemd derives app-specific ids (`sd_id128_get_machine_app_specific()`,
 * `systemd-id128 machine-id --app-specific=`): HMAC-SHA256 keyed with the machine
 * id over the agent's application id, as a version-4 UUID in 32 hex digits. The
 * machine id itself, which machine-id(5) asks to keep confidential, is never
 * published to etcd or a FleetLock server; and a host that also runs zincati
 * against the same FleetLock server holds its slots under a different id, so the
 * two never mistake each other's lock for their own. The id is stable across
 * kexecs and reboots. `fleet.host_id` overrides it (a hostname, an asset tag).
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import { FleetIdentityError } from "./fleet_error.ts";

/** The application id of liveupdate-agent for app-specific machine ids. */
export const APP_ID = "d077bce75086459dac3aa0924c82ae1c";

const MACHINE_ID = /^[0-9a-f]{32}$/;

function bytesOf(hex: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** The app-specific id of `machineId` (32 hex digits) for `appId`. */
export async function appSpecificId(machineId: string, appId = APP_ID): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    bytesOf(machineId),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const digest = new Uint8Array(await crypto.subtle.sign("HMAC", key, bytesOf(appId)));
  const id = digest.slice(0, 16);
  id[6] = (id[6]! & 0x0f) | 0x40;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return [...id].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The settings the host id comes from. */
export interface HostIdConfig {
  readonly host_id: string;
  readonly machine_id_file: string;
}

/**
 * This host's fleet id: `host_id` when set, else the app-specific id of the
 * machine id in `machine_id_file`. Needs read permission on that file.
 */
export async function readHostId(fs: FileSystem, config: HostIdConfig): Promise<string> {
  if (config.host_id !== "") return config.host_id;
  const file = config.machine_id_file;
  let text: string;
  try {
    text = await fs.readTextFile(file);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new FleetIdentityError(
      `Cannot read the machine id from "${file}": ${why}. Run systemd-machine-id-setup, or set ` +
        "fleet.host_id to a unique id for this host.",
      { cause: error },
    );
  }
  const machineId = text.trim();
  if (!MACHINE_ID.test(machineId)) {
    const shown = machineId.length > 40 ? `${machineId.slice(0, 37)}...` : machineId;
    throw new FleetIdentityError(
      `The machine id in "${file}" is ${JSON.stringify(shown)}, not 32 lowercase hex digits ` +
        '(it may be "uninitialized" early in boot). Run systemd-machine-id-setup, or set ' +
        "fleet.host_id to a unique id for this host.",
    );
  }
  if (/^0+$/.test(machineId)) {
    throw new FleetIdentityError(
      `The machine id in "${file}" is all zeros. Run systemd-machine-id-setup, or set ` +
        "fleet.host_id to a unique id for this host.",
    );
  }
  return await appSpecificId(machineId);
}

/**
 * Checking device paths before they become file names: a {@link DevicePath} is
 * relative to `<sysfs>/devices` and must stay below it.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import type { DevicePath } from "./kernel.ts";

/** A device path that would leave `<sysfs>/devices` or is not a path at all. */
export class DevicePathError extends AgentError {
  override name = "DevicePathError";
  readonly device: string;

  constructor(device: string, reason: string) {
    super(
      `Device path ${JSON.stringify(device)} ${reason}; a device is named by its path below ` +
        '<sysfs>/devices, such as "pci0000:00/0000:00:02.0".',
    );
    this.device = device;
  }
}

/**
 * Returns `device` if it names a path below `<sysfs>/devices`; throws
 * DevicePathError for an empty or absolute path, `.`/`..` or empty components,
 * NUL or newline characters.
 */
export function checkDevicePath(device: DevicePath): DevicePath {
  if (typeof device !== "string" || device === "") {
    throw new DevicePathError(String(device), "is empty");
  }
  if (/[\0\n]/.test(device)) throw new DevicePathError(device, "contains a NUL or newline");
  if (device.startsWith("/")) throw new DevicePathError(device, "is absolute");
  if (device.length > 4096) throw new DevicePathError(device, "is longer than 4096 bytes");
  for (const component of device.split("/")) {
    if (component === "") throw new DevicePathError(device, "has an empty component");
    if (component === "." || component === "..") {
      throw new DevicePathError(device, `has a "${component}" component`);
    }
  }
  return device;
}

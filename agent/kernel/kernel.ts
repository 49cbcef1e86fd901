/**
 * The agent's one door to the kernel's Live Update Orchestrator. Backends (the RFC
 * v1 sysfs files, the mainline /dev/liveupdate device) implement this interface;
 * every caller uses only it.
 *
 * @module
 */

/** The global live-update state. */
export type LuoState = "normal" | "prepared" | "updated";

/** A device, named by its path below `<sysfs>/devices` ("pci0000:00/0000:00:02.0"). */
export type DevicePath = string;

/** A device's live-update flags. */
export interface DeviceFlags {
  requested: boolean;
  preserved: boolean;
  reclaimed: boolean;
}

/** The per-device side of the interface, as the device selection uses it. */
export interface DeviceKernel {
  /** The global state (changing `requested` needs `normal`). */
  state(): Promise<LuoState>;
  /** Reads a device's flags. Throws KernelError (ENOENT when the device vanished). */
  readDevice(device: DevicePath): Promise<DeviceFlags>;
  /** Writes `requested`. Throws KernelError with the kernel's errno on refusal. */
  setRequested(device: DevicePath, requested: boolean): Promise<void>;
}

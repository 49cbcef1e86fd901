/**
 * The kernel layer: the live-update interface, its backends and their selection,
 * the state watcher and the incoming KHO data.
 *
 * @module
 */

export * from "./kernel.ts";
export * from "./kernel_error.ts";
export * from "./kernel_failure.ts";
export * from "./backend.ts";
export * from "./select.ts";
export * from "./device_path.ts";
export * from "./kho.ts";
export * from "./fdt.ts";
export * from "./state_watcher.ts";
export {
  probeRfcV1,
  RFC_V1_DIR,
  RFC_V1_EXTRA_FILES,
  RFC_V1_FILES,
  rfcV1Provider,
} from "./rfc_v1.ts";
export * from "./wait.ts";
export { parseFlag, parseState } from "./contents.ts";

/**
 * The new kernel's version check: a handover from LUO 1.1 into LUO 1.0 is
 * refused (loudly; a LUO kernel panics), the state is `normal`. The target is
 * loaded without the handover, as the agent loads it, so the REBOOT stand-in's
 * reload is exercised; a later plain kexec (into liveupdate=0) drops the stale
 * handover, and without liveupdate the interface is gone.
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";

/** See the module documentation. */
export const versionMismatch: Scenario = {
  name: "version_mismatch",
  summary: "LUO 1.1 -> 1.0 handover refused; plain kexec hands nothing over; liveupdate=0 hides it",
  guest: new URL("./version_mismatch", import.meta.url).pathname,
  boots: 3,
  append: ["luo_rfc1.version=1.1"],
  verify(result) {
    if (!result.console.includes("REBOOT done; loading /boot/vmlinuz-")) {
      throw new Error("The console does not show the REBOOT stand-in loading the target again");
    }
  },
};

/**
 * The REBOOT step fails (the module's fail_reboot knob): the kernel cancels,
 * the kexec fails and systemd falls back to a cold reboot; the next boot is
 * `normal` with nothing preserved.
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";

/** See the module documentation. */
export const coldReboot: Scenario = {
  name: "cold_reboot",
  summary: "REBOOT step fails: cancelled, no kexec, systemd's cold-reboot fallback, normal after",
  guest: new URL("./cold_reboot", import.meta.url).pathname,
  boots: 2,
  verify(result) {
    // What happened after journald stopped is only on the console.
    for (
      const line of [
        "luo_rfc1: REBOOT failed (fail_reboot=5)",
        "luo-rfc1-reboot: REBOOT failed",
      ]
    ) {
      if (!result.console.includes(line)) throw new Error(`The console lacks "${line}"`);
    }
    if (result.boots[1]?.name !== "cold") {
      throw new Error(`The second boot came up ${result.boots[1]?.name}, not cold`);
    }
  },
};

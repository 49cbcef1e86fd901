/**
 * The infrastructure without the agent's flow: the module's interface as a
 * program sees it, udev's marks, the agent runnable in the guest, prepare, a
 * real kexec carrying the handover, `updated` in the new kernel, reclaim and
 * finish.
 *
 * @module
 */

import type { Scenario } from "../scenario.ts";

/** See the module documentation. */
export const smoke: Scenario = {
  name: "smoke",
  summary: "module, udev marks, prepare, real kexec, updated with the same devices, finish",
  guest: new URL("./smoke", import.meta.url).pathname,
  boots: 2,
  verify(result) {
    const [first, second] = result.boots;
    if (first?.name !== "cold" || second?.name !== "kexec") {
      throw new Error(
        `Expected a cold first boot and a kexec second, got ${first?.name}, ${second?.name}`,
      );
    }
    if (!second.value.includes("luo_rfc1.handover=updated:1.0:")) {
      throw new Error(`The second kernel's command line lacks the handover: ${second.value}`);
    }
  },
};

/**
 * A stand-in for the mainline `/dev/liveupdate` backend until it lands (it lives
 * in `agent/kernel/mainline/` and replaces this provider in `select.ts`): it
 * detects the character device so `status` and the automatic selection can say
 * what the kernel offers, and reports it as not driven by this build.
 *
 * @module
 */

import { failed } from "../host/mod.ts";
import type { BackendProbe, BackendProvider } from "./backend.ts";
import { KernelUnsupportedError } from "./kernel_error.ts";

/** The mainline backend's place in the selection, until the backend itself is built in. */
export const mainlinePendingProvider: BackendProvider = {
  name: "mainline",
  probe(context): Promise<BackendProbe> {
    const location = context.device;
    const probe: BackendProbe = {
      backend: "mainline",
      location,
      present: false,
      usable: false,
      missing: [],
      problems: [],
      summary: "",
    };
    const info = context.fs.stat(location);
    if (!failed(info)) {
      probe.present = true;
      probe.problems.push(
        info.type === "char-device"
          ? `${location} exists (the mainline live-update interface), but this build of the ` +
            "agent does not drive it yet."
          : `${location} is not a character device.`,
      );
    } else if (info.errno === "ENOENT") {
      probe.missing.push(location);
      probe.problems.push(
        `No ${location}: the running kernel has no mainline live-update interface ` +
          "(CONFIG_LIVEUPDATE, booted with kho=on liveupdate=on).",
      );
    } else {
      probe.present = true;
      probe.problems.push(`${location} cannot be examined (${info.errno}).`);
    }
    probe.summary = probe.problems[0]!;
    return Promise.resolve(probe);
  },
  open(_context, probe) {
    throw new KernelUnsupportedError(probe.summary, probe.missing);
  },
};

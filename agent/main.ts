#!/usr/bin/env -S deno run
/**
 * `liveupdate-agent`: the host agent for the Linux kernel's Live Update
 * Orchestrator. This is the only place the real host is created; everything
 * below receives it.
 *
 * @module
 */

import { runCli } from "./cli/mod.ts";
import { createRealHost, lazyKernelFs, lazyLibc } from "./host/mod.ts";
import { dbusNextConnector } from "./systemd/dbus_next.ts";

if (import.meta.main) {
  const libc = lazyLibc();
  const code = await runCli(Deno.args, createRealHost({ dbus: dbusNextConnector }), {
    platform: { libc, kernelFs: lazyKernelFs(libc) },
  });
  Deno.exit(code);
}

#!/usr/bin/env -S deno run
/**
 * `liveupdate-agent`: the host agent for the Linux kernel's Live Update
 * Orchestrator. This is the only place the real host is created; everything
 * below receives it.
 *
 * @module
 */

import { runCli } from "./cli/mod.ts";
import { realReleaseSource } from "./compat/mod.ts";
import { createRealHost, lazyLibc } from "./host/mod.ts";

if (import.meta.main) {
  const code = await runCli(Deno.args, createRealHost(), {
    platform: { libc: lazyLibc(), releases: realReleaseSource },
  });
  Deno.exit(code);
}

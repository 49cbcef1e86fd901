/**
 * A real systemd manager for tests: the agent's own private manager
 * (`agent/rehearsal/private_systemd.ts`, which the rehearsal uses too and which
 * documents how it runs), re-exported with the tests' run names
 * (`liveupdate-test-systemd-<test pid>-<n>-<random>`) and error names.
 *
 * ```ts
 * await using systemd = await startPrivateSystemd({ units: { "a.service": "[Service]\n…" } });
 * const manager = await SystemdManager.connect(dbusNextConnector, systemd.busAddress);
 * await systemd.systemctl(["start", "a.service"]); // inside the namespace
 * ```
 *
 * Needs root (cgroups, namespaces) and `--allow-all` in practice.
 *
 * @module
 */

import {
  type PrivateSystemd,
  type PrivateSystemdOptions,
  startPrivateSystemd as startManager,
  sweepStaleRuns as sweepRuns,
} from "../../agent/rehearsal/private_systemd.ts";

export {
  cgroupHierarchies,
  type CommandResult,
  PrivateSystemd,
  PrivateSystemdLeakError as HarnessLeakError,
  type PrivateSystemdOptions,
  PrivateSystemdStartError as HarnessStartError,
} from "../../agent/rehearsal/private_systemd.ts";

/** The prefix of the tests' runs. */
export const TEST_RUN_PREFIX = "liveupdate-test-systemd";

/** Starts a private manager for a test (see the agent's module for the options). */
export function startPrivateSystemd(options: PrivateSystemdOptions = {}): Promise<PrivateSystemd> {
  return startManager({ prefix: TEST_RUN_PREFIX, ...options });
}

/** Removes cgroups of earlier test runs whose test process is gone. */
export function sweepStaleRuns(): Promise<string[]> {
  return sweepRuns(TEST_RUN_PREFIX);
}

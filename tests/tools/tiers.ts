/**
 * The test tiers the suite runs, in order: what each needs installed, what it
 * builds first, and which test files it runs.
 *
 * @module
 */

/** One tier of the test suite. */
export interface Tier {
  name: string;
  description: string;
  /** Package sets for tests/tools/setup_host.sh. */
  packages: string[];
  /** Commands run (as argument arrays) before the tests, for example builds. */
  prepare: string[][];
  /** Files and folders given to `deno test`. */
  paths: string[];
  /** Extra `deno test` flags. */
  flags: string[];
}

/** Every tier, fastest first. */
export const TIERS: readonly Tier[] = [
  {
    name: "unit",
    description: "Each part of the agent on its own (no root, no services).",
    packages: ["unit"],
    prepare: [],
    paths: ["agent/", "tests/tools/"],
    flags: ["--allow-all"],
  },
  {
    name: "integration",
    description:
      "Against real processes as root: the simulated LUO kernel (FUSE) and its conformance " +
      "suite, a private systemd manager on its own bus, the agent's layers against both, and " +
      "the hostile-input corpus and write-confinement trace (strace).",
    packages: ["integration"],
    prepare: [["bash", "tests/sim/build.sh"], ["bash", "tests/tools/udevadm.sh"]],
    paths: ["tests/sim/", "tests/systemd/", "tests/integration/", "tests/hostile/"],
    flags: ["--allow-all"],
  },
  {
    name: "fleet",
    description: "Fleet rollouts against real etcd (1 and 3 members) and a FleetLock test double.",
    packages: ["fleet"],
    prepare: [],
    paths: ["tests/fleet/"],
    flags: ["--allow-all"],
  },
];

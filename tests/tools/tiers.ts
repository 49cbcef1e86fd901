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
    prepare: [
      ["bash", "tests/sim/build.sh"],
      ["bash", "tests/tools/udevadm.sh"],
      ["bash", "tests/tools/promtool.sh"],
    ],
    paths: ["tests/sim/", "tests/systemd/", "tests/integration/", "tests/hostile/"],
    flags: ["--allow-all"],
  },
  {
    name: "fleet",
    description:
      "Fleet rollouts against real etcd (1 and 3 members) and a FleetLock test double; " +
      "the update flow with its fleet slot, and rollouts of real agents, each on its own " +
      "simulated kernel and private systemd.",
    packages: ["fleet", "integration"],
    prepare: [["bash", "tests/sim/build.sh"]],
    paths: ["tests/fleet/"],
    flags: ["--allow-all"],
  },
  {
    name: "vm",
    description:
      "End to end in a Debian VM under qemu: systemd as PID 1, udev, the luo_rfc1 module, real kexec.",
    packages: ["vm"],
    // The guest image (debootstrap, module, disk), cached under /var/cache/liveupdate-agent/vm.
    prepare: [[Deno.execPath(), "run", "--allow-all", "tests/e2e/image.ts"]],
    paths: ["tests/e2e/"],
    flags: ["--allow-all"],
  },
  {
    name: "kernel",
    description:
      "The mainline /dev/liveupdate backend and session broker on a real Linux 7.3 kernel " +
      "(built from Debian's linux-source-7.3, cached) under qemu, across real KHO kexecs; " +
      "an initramfs guest and a Debian guest with systemd.",
    packages: ["kernel"],
    prepare: [
      ["bash", "tests/mainline/build_kernel.sh"],
      ["bash", "tests/mainline/debian_image.sh"],
    ],
    paths: ["tests/mainline/"],
    flags: ["--allow-all"],
  },
];

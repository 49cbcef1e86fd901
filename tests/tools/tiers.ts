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
    name: "vm",
    description:
      "End to end in a Debian VM under qemu: systemd as PID 1, udev, the luo_rfc1 module, real kexec.",
    packages: ["vm"],
    // The guest image (debootstrap, module, disk), cached under /var/cache/liveupdate-agent/vm.
    prepare: [[Deno.execPath(), "run", "--allow-all", "tests/e2e/image.ts"]],
    paths: ["tests/e2e/"],
    flags: ["--allow-all"],
  },
];

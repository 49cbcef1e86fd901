// deno-lint-ignore-file no-console -- a developer tool that prints progress, not part of the agent
/**
 * The README's main-job command: a full live-update rehearsal of the agent on the
 * built-in simulated kernel and a private systemd manager.
 *
 * @module
 */

if (import.meta.main) {
  console.log(
    [
      "liveupdate-agent demo: the rehearsal is not built yet. When it is, this command will:",
      "  1. install what it needs (fuse3, systemd) and build the simulated LUO kernel;",
      "  2. mount the simulated kernel and start a private systemd manager with sample",
      "     services standing for a VMM;",
      "  3. run 'liveupdate-agent prepare' (devices chosen by udev rules, services stopped,",
      "     kernel prepared), simulate the kexec, and run 'liveupdate-agent finish';",
      "  4. print the record of the attempt.",
    ].join("\n"),
  );
}

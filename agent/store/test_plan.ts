/**
 * For tests: the smallest plan an open attempt record may carry (every phase,
 * no devices, a target), as `checkAttempt` demands of records it acts on.
 *
 * @module
 */

/** The smallest valid plan of an open attempt. */
export const SMALLEST_PLAN = {
  phases: ["prepare", "reboot", "updated", "finish", "cancel"].map((phase) => ({
    phase,
    stop: [],
    start: [],
    target: `liveupdate-${phase}.target`,
    timeoutMs: 1000,
  })),
  devices: { supported: true, selected: [], ancestors: [], changes: [] },
  target: { kernel: "/boot/vmlinuz", cmdline: "liveupdate=on kho=on" },
};

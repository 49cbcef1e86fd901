/**
 * The kinds of events the agent logs, each with a stable journal MESSAGE_ID, a
 * default priority and the catalog text `journalctl -x` shows. The shipped catalog
 * (units/liveupdate-agent.catalog) is generated from this table and checked by a
 * test. Never change an id: monitoring matches on them.
 *
 * Catalog texts may name record fields as @FIELD@; the agent sends its fields as
 * LIVEUPDATE_<NAME> (attempt → LIVEUPDATE_ATTEMPT, unit → LIVEUPDATE_UNIT, …).
 *
 * @module
 */

import type { Level } from "./level.ts";

/** One kind of event. */
export interface EventKind {
  /** 128-bit MESSAGE_ID, 32 lowercase hex digits. */
  id: string;
  level: Level;
  subject: string;
  text: string;
}

const DOCS = "file:///usr/share/doc/liveupdate-agent/README.md";

/** Every event kind the agent logs. */
export const EVENTS = {
  "update-started": {
    id: "6408f722220f4a3f962683a69bf2faf8",
    level: "notice",
    subject: "Live update @LIVEUPDATE_ATTEMPT@ started",
    text: "A live update (kexec into a new kernel while preserved devices keep running) was " +
      "started. Preflight passed; the agent now changes the host step by step, journaling " +
      "each step in its record so a failure or a crash can be rolled back.",
  },
  "preflight-refused": {
    id: "4c12abff62af4097a62734331b8a82c9",
    level: "error",
    subject: "Live update refused by preflight: @LIVEUPDATE_REASON@",
    text: "Preflight found a reason not to start the live update. Nothing on the host was " +
      "changed. Fix the reason given (configuration, target kernel, compatibility, units) and " +
      "run 'liveupdate-agent check' to see the full plan before trying again.",
  },
  "step-started": {
    id: "ff809f85709e4584a40c96b6aa8ba9a0",
    level: "info",
    subject: "Live update step @LIVEUPDATE_STEP@ started",
    text: "The agent journaled what this step changes before acting, so it can be undone.",
  },
  "step-done": {
    id: "3b7a0e641bfc463caa2c658d61a8557f",
    level: "info",
    subject: "Live update step @LIVEUPDATE_STEP@ done",
    text: "The step completed and its result was journaled.",
  },
  "step-failed": {
    id: "a50901e190a64100941adbef18389123",
    level: "error",
    subject: "Live update step @LIVEUPDATE_STEP@ failed",
    text: "A step of the live update failed. The agent now undoes every step taken so far, " +
      "in reverse order, so the host ends where it started.",
  },
  "rolled-back": {
    id: "f3a387330d184f2db2841fa5b7c09c4a",
    level: "warning",
    subject: "Live update @LIVEUPDATE_ATTEMPT@ rolled back",
    text: "The live update did not happen. Everything it had changed was put back: the kernel " +
      "is in state normal, services are as before, device requests are restored and no kexec " +
      "kernel is loaded. 'liveupdate-agent status' shows why it failed.",
  },
  "rollback-incomplete": {
    id: "dbfcc464bf3743628d53b131f49c6308",
    level: "error",
    subject: "Live update @LIVEUPDATE_ATTEMPT@ could not be fully rolled back",
    text: "Undoing the live update failed for at least one step. The host may not be where it " +
      "started. 'liveupdate-agent status' lists what is left; fix the cause and run " +
      "'liveupdate-agent recover', which retries only what is not undone yet.",
  },
  "devices-requested": {
    id: "e50e6de74b3f46a6957dcb19ea9fc969",
    level: "info",
    subject: "Devices requested for preservation",
    text: "The devices chosen by udev rules were marked for preservation in the kernel " +
      "(liveupdate/requested). Their ancestors are preserved with them.",
  },
  "device-refused": {
    id: "ce13545b634c4edc9b1864161c093672",
    level: "error",
    subject: "Kernel refused to preserve @LIVEUPDATE_DEVICE@",
    text: "The kernel refused to mark the device for preservation. EINVAL usually means the " +
      "device or one of its ancestors has a driver or bus without live-update support; remove " +
      "the device from the udev rules or update its driver.",
  },
  "phase-done": {
    id: "58f6b20d600548da8fd06a41308526b4",
    level: "info",
    subject: "Live update phase @LIVEUPDATE_PHASE@ done",
    text: "The units of this phase were stopped and started, and liveupdate-@LIVEUPDATE_PHASE@" +
      ".target was reached.",
  },
  "unit-failed": {
    id: "1b03c9a1248d41629f4bc92c7887b336",
    level: "error",
    subject: "Unit @LIVEUPDATE_UNIT@ failed in live update phase @LIVEUPDATE_PHASE@",
    text: "A job for this unit did not complete. See 'journalctl -u @LIVEUPDATE_UNIT@'.",
  },
  "kernel-prepared": {
    id: "21023eb1c3bd4cfc99c2595c391ff69a",
    level: "notice",
    subject: "Kernel prepared for live update",
    text: "Every subsystem saved its state; preserved devices may refuse unbinding and new DMA " +
      "mappings until the kexec or a cancel.",
  },
  "kexec-loaded": {
    id: "35353143116745d29becc167a2a256a4",
    level: "info",
    subject: "Target kernel loaded for kexec",
    text: "The target kernel was loaded with kexec_file_load. Until the update ends, a plain " +
      "reboot would kexec into it; the agent unloads it if the update is rolled back.",
  },
  "kexec-issued": {
    id: "69a4eb32aa7c43e4a5ebbbccb601c6d9",
    level: "notice",
    subject: "Kexec into the target kernel issued",
    text: "The agent asked systemd to kexec into the target kernel. In the new kernel, " +
      "liveupdate-finish.service completes the update.",
  },
  "update-succeeded": {
    id: "69c83e01e9ee4f0daa74d26b02a2f09f",
    level: "notice",
    subject: "Live update @LIVEUPDATE_ATTEMPT@ succeeded",
    text: "The host runs the target kernel, the update was finished and the phase units ran. " +
      "Timings are in the record ('liveupdate-agent status').",
  },
  "update-not-happened": {
    id: "440022fb155641568553597bbb47df1e",
    level: "error",
    subject: "Live update @LIVEUPDATE_ATTEMPT@ did not happen",
    text: "The record says the kexec was issued, but the kernel booted in state normal: the " +
      "kexec failed, or a REBOOT callback failed and the machine was cold-rebooted, so the " +
      "preserved devices were reset. The agent recorded the failure and ran the cancel phase " +
      "so services come back.",
  },
  "version-mismatch": {
    id: "98934002be8a4551b6df8747af137e70",
    level: "error",
    subject: "Live update handover does not match the record",
    text: "After the kexec, the booted kernel or the LUO version in the incoming handover " +
      "differs from what the agent recorded before the kexec. The update is finished anyway; " +
      "check the kernel metadata shipped with both kernels.",
  },
  "device-not-reclaimed": {
    id: "b83edd1cb2d54a87b05e914079ab6609",
    level: "warning",
    subject: "Device @LIVEUPDATE_DEVICE@ was not reclaimed",
    text: "A preserved device was not reclaimed in time. The unit that should reclaim it is " +
      "named in the record (LIVEUPDATE_UNIT); check that service.",
  },
  "recovered": {
    id: "a1d03fd92ea944a7ac1a0b2ec0f2f769",
    level: "warning",
    subject: "Interrupted live update @LIVEUPDATE_ATTEMPT@ recovered",
    text: "The agent found an update that was interrupted (the agent was killed or the machine " +
      "lost power) and finished its rollback, or handed it to finish.",
  },
  "fleet-slot-acquired": {
    id: "9ddee9e12eb94c9a852bd00d6af24461",
    level: "info",
    subject: "Fleet rollout slot acquired",
    text: "The host took a slot in the fleet-wide semaphore before changing anything.",
  },
  "fleet-slot-kept": {
    id: "1e08edee42c54fa5bf9589402238bd53",
    level: "warning",
    subject: "Fleet rollout slot kept after a failed update",
    text: "The update failed, so the host keeps its slot on purpose and the rollout halts. " +
      "After looking, free it with 'liveupdate-agent fleet release'.",
  },
  "fleet-slot-released": {
    id: "0306dca8db2141dc821991fa0761fa73",
    level: "info",
    subject: "Fleet rollout slot released",
    text: "The host finished its update and is healthy; its slot went back to the fleet.",
  },
  "kernel-state-changed": {
    id: "bab4591ea61d4d75a191e9d7d55783f2",
    level: "info",
    subject: "Kernel live-update state is now @LIVEUPDATE_STATE@",
    text: "The kernel's live-update state changed (normal, prepared or updated).",
  },
  "update-cancelled": {
    id: "f9dea6147ad74eb6ade1d6ee9e423df0",
    level: "notice",
    subject: "Live update @LIVEUPDATE_ATTEMPT@ cancelled",
    text: "An operator cancelled the update before the kexec; everything it changed was undone.",
  },
  "record-unusable": {
    id: "893690b70df54436a4b319db2475881c",
    level: "error",
    subject: "Live update record is unusable",
    text: "An attempt record is damaged. The agent set it aside (*.corrupt) and brought the " +
      "kernel to a safe state where it could; check the services and devices it names.",
  },
  "finished-without-record": {
    id: "15715e8be84345afb64e4dc5d9f38a42",
    level: "warning",
    subject: "Live update finished without a record",
    text: "The kernel came up in state updated but the agent has no record of preparing it " +
      "(another tool did, or the records were lost). The agent finished it.",
  },
  "sessions-prepared": {
    id: "3c1f0d2a9b8e4f7c8a6d5e4b3c2a1f09",
    level: "notice",
    subject: "Every live-update session client is ready",
    text: "On a mainline kernel (/dev/liveupdate) every client subscribed to the session broker " +
      "preserved its files and reported READY; the broker holds the sessions until reboot(2) " +
      "serializes them.",
  },
  "session-not-ready": {
    id: "7d2e4c6b8a0f4e1d9c3b5a7f6e8d0c2b",
    level: "error",
    subject: "Session @LIVEUPDATE_SESSION@ held up the live update",
    text: "Its client did not report READY in time (sessions.ready_timeout), left, or the kernel " +
      "refused its session. The broker aborted every session (nothing stays preserved) and the " +
      "update was rolled back; check the client service.",
  },
  "session-not-claimed": {
    id: "a4b6c8d0e2f44a1b8c3d5e7f9a0b2c4d",
    level: "warning",
    subject: "Session @LIVEUPDATE_SESSION@ was not claimed after the live update",
    text: "No client claimed the session within sessions.claim_timeout; the broker finished it " +
      "and its preserved files were dropped.",
  },
  "session-lost": {
    id: "e1f3a5c7b9d04e2f8a6c4b2d0f9e7a5c",
    level: "error",
    subject: "Session @LIVEUPDATE_SESSION@ did not survive the live update",
    text: "The new kernel did not hand the session over (a cold boot, a kernel loaded with " +
      "kexec_load, or the broker did not hold it until reboot(2)). Its client's state is lost.",
  },
} as const satisfies Record<string, EventKind>;

/** The name of an event kind. */
export type EventName = keyof typeof EVENTS;

/** The journal catalog (systemd catalog format) of every event kind. */
export function renderCatalog(): string {
  const entries = Object.values(EVENTS as Record<string, EventKind>).map((event) =>
    [
      `-- ${event.id}`,
      `Subject: ${event.subject}`,
      "Defined-By: liveupdate-agent",
      `Documentation: ${DOCS}`,
      "",
      event.text,
    ].join("\n")
  );
  return [
    "#  Journal catalog of liveupdate-agent; generated from agent/log/events.ts.",
    "#  Installed to /usr/lib/systemd/catalog/; 'journalctl --update-catalog' indexes it.",
    "",
    entries.join("\n\n"),
    "",
  ].join("\n");
}

/** The event kinds as a Markdown table (name, MESSAGE_ID, priority, subject), for the README. */
export function eventTable(): string {
  const rows = Object.entries(EVENTS as Record<string, EventKind>).map(([name, event]) =>
    `| \`${name}\` | \`${event.id}\` | ${event.level} | ${event.subject} |`
  );
  return ["| event | MESSAGE_ID | priority | subject |", "| --- | --- | --- | --- |", ...rows]
    .join("\n") + "\n";
}

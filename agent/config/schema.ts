/**
 * The agent's configuration schema: every key, its default, its meaning and the
 * form it must take. Production defaults point at the real host; tests and the
 * rehearsal point the paths elsewhere through drop-ins.
 *
 * The README's configuration reference is generated from this table
 * (`liveupdate-agent config --reference`) and checked by a test.
 *
 * @module
 */

import {
  choice,
  duration,
  flag,
  integer,
  path,
  section,
  text,
  textMap,
  unitList,
  type ValueOf,
} from "./fields.ts";

/** The update phases, in the order an update runs them. */
export const PHASES = ["prepare", "reboot", "updated", "finish", "cancel"] as const;

/** One of {@link PHASES}. */
export type Phase = typeof PHASES[number];

const PHASE_DOCS: Readonly<Record<Phase, string>> = {
  prepare: "Before the kernel is prepared: quiesce workloads (for example checkpoint VMs).",
  reboot: "After the kernel is prepared, just before the kexec.",
  updated: "In the new kernel, before finish: restore workloads and reclaim devices.",
  finish: "In the new kernel, after finish: the update is complete.",
  cancel: "When an update is cancelled or rolled back: bring workloads back.",
};

function phaseSection(phase: Phase) {
  return section(
    `Phase "${phase}". ${PHASE_DOCS[phase]} The target liveupdate-${phase}.target is started ` +
      "as part of the phase, so services can hook in with WantedBy= instead of being listed here.",
    {
      stop: unitList("Units stopped in this phase.", []),
      start: unitList("Units started in this phase.", []),
      timeout: duration(
        "How long the phase's jobs may take before the phase fails.",
        "2min",
        { min: "1s", max: "1h" },
      ),
    },
  );
}

const BUS_ADDRESS = /^(unix:path=\/[^,;]+|unix:abstract=[^,;]+)$/;

/** The whole configuration schema. */
export const SCHEMA = {
  paths: section("Where the agent finds the host's interfaces and keeps its state.", {
    sysfs: path("Root of sysfs (the kernel's live-update files are below it).", "/sys"),
    proc: path("Root of procfs (for the running kernel's command line).", "/proc"),
    udev_db: path("The udev database (tags and device properties).", "/run/udev"),
    debugfs: path("Root of debugfs (for the incoming KHO tree).", "/sys/kernel/debug"),
    state_dir: path("The agent's records and journal of update steps.", "/var/lib/liveupdate"),
    runtime_dir: path("Runtime files: the update lock and sockets.", "/run/liveupdate"),
  }),
  log: section("Logging.", {
    level: choice(
      "The lowest priority logged.",
      ["debug", "info", "notice", "warning", "error"],
      "info",
    ),
    format: choice(
      'Log format. "auto" picks journal prefixes under systemd, text on a terminal.',
      ["auto", "text", "journal", "json"],
      "auto",
    ),
  }),
  kernel: section("The kernel's live-update interface.", {
    backend: choice(
      'Which interface to drive: "rfc-v1" (sysfs files), "mainline" (/dev/liveupdate), or ' +
        '"auto" to detect.',
      ["auto", "rfc-v1", "mainline"],
      "auto",
    ),
    watch_interval: duration(
      "Longest time a state change may go unnoticed when the kernel sends no poll wake-up.",
      "1s",
      { min: "10ms", max: "1min" },
    ),
    device: path("The mainline live-update character device.", "/dev/liveupdate"),
  }),
  systemd: section("The service manager.", {
    bus_address: text(
      "D-Bus address of the system bus that systemd's manager answers on.",
      "unix:path=/run/dbus/system_bus_socket",
      { pattern: BUS_ADDRESS, expected: 'a D-Bus address such as "unix:path=/run/dbus/socket"' },
    ),
  }),
  phases: section("Units the agent stops and starts in each update phase.", {
    prepare: phaseSection("prepare"),
    reboot: phaseSection("reboot"),
    updated: phaseSection("updated"),
    finish: phaseSection("finish"),
    cancel: phaseSection("cancel"),
  }),
  target: section("The kernel to live-update into.", {
    kernel: path("The target kernel image (required by prepare).", "", { optional: true }),
    initrd: path("The target's initial ramdisk, if any.", "", { optional: true }),
    cmdline: text(
      "The target's full command line; empty reuses the running kernel's command line.",
      "",
    ),
    append: text("Extra arguments appended to the target's command line.", ""),
  }),
  compat: section("Kernel handover (KHO/LUO) version compatibility.", {
    allow_unknown: flag(
      "Allow an update when a kernel's LUO version is unknown (recorded as an override).",
      false,
    ),
    running_version: text(
      'The running kernel\'s LUO version, overriding its metadata ("" reads the metadata).',
      "",
      { pattern: /^(|\d{1,9}\.\d{1,9})$/, expected: 'a version such as "1.0", or ""' },
    ),
    target_version: text(
      'The target kernel\'s LUO version, overriding its metadata ("" reads the metadata).',
      "",
      { pattern: /^(|\d{1,9}\.\d{1,9})$/, expected: 'a version such as "1.0", or ""' },
    ),
    modules_dir: path(
      "Where each kernel's metadata lives (<modules_dir>/<release>/liveupdate-abi).",
      "/usr/lib/modules",
    ),
  }),
  kexec: section("Loading the target kernel.", {
    binary: path("kexec-tools' kexec program.", "/usr/sbin/kexec"),
    load_timeout: duration("How long loading the target may take.", "2min", {
      min: "1s",
      max: "30min",
    }),
  }),
  devices: section("Which devices the update preserves (chosen by udev rules).", {
    tag: text("The udev tag that marks a device for preservation.", "liveupdate", {
      pattern: /^[A-Za-z0-9_-]{1,64}$/,
      expected: "a udev tag name of letters, digits, '_' and '-'",
    }),
    match: textMap("Extra udev properties a tagged device must have to be selected.", {
      key: /^[A-Z0-9_]{1,64}$/,
      value: /^[^\n\0]{0,256}$/,
      expected: 'a table of udev property names to values, such as { DRIVER = "vfio-pci" }',
    }),
    clear_foreign: flag(
      "Also clear `requested` on devices the agent did not request itself when they are not selected.",
      false,
    ),
    reclaim_timeout: duration(
      "How long finish waits for preserved devices to be reclaimed.",
      "5min",
      { min: "0s", max: "1h" },
    ),
  }),
  sessions: section(
    "Live-update sessions brokered to client services (mainline /dev/liveupdate kernels).",
    {
      socket: path(
        "The root-only socket clients connect to; empty means <runtime_dir>/sessions.sock. Set " +
          '"/run/luod/liveupdate.sock" for luod (luo-agent) clients.',
        "",
        { optional: true },
      ),
      ready_timeout: duration(
        "How long preparation waits for every subscribed client to preserve its files (READY).",
        "1min",
        { min: "1s", max: "1h" },
      ),
      claim_timeout: duration(
        "After a live update, how long sessions wait for their clients to claim them before " +
          "they are finished and their files dropped.",
        "10min",
        { min: "1s", max: "24h" },
      ),
      device_busy_timeout: duration(
        "How long a busy /dev/liveupdate (held by systemd or another opener) is retried.",
        "10s",
        { min: "0s", max: "10min" },
      ),
    },
  ),
  store: section("The record of update attempts.", {
    history: integer("How many past attempts to keep.", 50, { min: 1, max: 10_000 }),
  }),
  metrics: section("Prometheus metrics for node_exporter's textfile collector.", {
    file: path("The metrics file to write; empty disables metrics.", "", { optional: true }),
  }),
  control: section("Who may change anything through the agent.", {
    group: text("A group whose members may run changing commands besides root.", "", {
      pattern: /^(|[a-z_][a-z0-9_-]{0,31})$/,
      expected: 'a group name such as "liveupdate", or ""',
    }),
  }),
};

/** The agent's configuration, as the rest of the agent reads it. */
export type Config = ValueOf<typeof SCHEMA>;

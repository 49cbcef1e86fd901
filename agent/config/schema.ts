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

import { DAY_PATTERN, TIME_PATTERN } from "../fleet/window.ts";
import { isTimeZone } from "../fleet/zone.ts";
import {
  choice,
  duration,
  flag,
  integer,
  integerMap,
  path,
  section,
  text,
  textList,
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

/** A FleetLock group name (the protocol's rule), also used in etcd keys. */
const FLEET_GROUP = /^[a-zA-Z0-9.-]{1,64}$/;

function urlProblem(text: string): string | undefined {
  try {
    const url = new URL(text);
    if (url.protocol !== "http:" && url.protocol !== "https:") return "it is not an http(s) URL";
    if (url.username || url.password) {
      return "it carries credentials; use the username and password_file keys";
    }
    if (url.search || url.hash) return "it has a query or fragment";
    return undefined;
  } catch {
    return "it is not a URL";
  }
}

function tlsKeys(what: string) {
  return {
    ca_file: path(
      `PEM file of the CA that signed the ${what}'s certificate; empty uses the built-in roots.`,
      "",
      { optional: true },
    ),
    cert_file: path(`PEM client certificate presented to the ${what} (with key_file).`, "", {
      optional: true,
    }),
    key_file: path(`PEM private key of cert_file.`, "", { optional: true }),
  };
}

// A unix socket path: the D-Bus library the agent uses cannot reach abstract sockets.
const BUS_ADDRESS = /^unix:path=\/[^,;]+$/;

/** The whole configuration schema. */
export const SCHEMA = {
  paths: section("Where the agent finds the host's interfaces and keeps its state.", {
    sysfs: path("Root of sysfs (the kernel's live-update files are below it).", "/sys"),
    proc: path(
      "Root of procfs (the running kernel's command line and release, the boot id, the uptime).",
      "/proc",
    ),
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
      {
        pattern: BUS_ADDRESS,
        expected: 'a unix socket D-Bus address such as "unix:path=/run/dbus/socket"',
      },
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
    tools_defaults: path(
      "kexec-tools' defaults file (and its .d folder): on mainline kernels an update is refused " +
        "while it sets LOAD_KEXEC=true, whose shutdown loader (kexec -l) loses every session.",
      "/etc/default/kexec",
    ),
    load_timeout: duration("How long loading the target may take.", "2min", {
      min: "1s",
      max: "30min",
    }),
    issue: choice(
      'How the kexec is issued: "systemd" starts kexec.target (as `systemctl kexec` does); ' +
        '"command" runs kexec.issue_command instead (rehearsals on a simulated kernel).',
      ["systemd", "command"],
      "systemd",
    ),
    issue_command: textList(
      'The program kexec.issue = "command" runs, as an argument list (absolute path first).',
      [],
      {
        pattern: /^[^\0\n]{1,4096}$/,
        expected: 'a list of arguments such as ["/usr/bin/x", "kexec"]',
      },
    ),
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
  fleet: section(
    "Fleet-wide rollouts: a slot in a fleet-wide semaphore (etcd or a FleetLock server) before " +
      "anything changes, released after a healthy finish, kept on failure so the rollout halts.",
    {
      backend: choice(
        'Where the fleet\'s slots live: "none" (this host updates on its own), "etcd" (etcd v3 ' +
          'directly) or "fleetlock" (a FleetLock server such as airlock).',
        ["none", "etcd", "fleetlock"],
        "none",
      ),
      group: text(
        "This host's group (rack, cluster); each group has its own slots.",
        "default",
        {
          pattern: FLEET_GROUP,
          expected: "a group name of letters, digits, '.' and '-' (at most 64)",
        },
      ),
      slots: integer(
        "How many hosts of a group may update at once (etcd; a FleetLock server sets its own).",
        1,
        { min: 1, max: 100_000 },
      ),
      group_slots: integerMap("Slot counts of named groups, overriding slots (etcd).", {
        key: FLEET_GROUP,
        min: 1,
        max: 100_000,
        expected: "a table of group names to slot counts, such as { rack-a1 = 2 }",
      }),
      host_id: text(
        "This host's id in the fleet; empty derives one from machine_id_file (app-specific, " +
          "so the machine id itself is never published).",
        "",
        {
          pattern: /^(|[A-Za-z0-9._:-]{1,128})$/,
          expected: "an id of letters, digits, '.', '_', ':' and '-' (at most 128), or \"\"",
        },
      ),
      machine_id_file: path("The machine id the default host id derives from.", "/etc/machine-id"),
      wait_timeout: duration(
        "How long to wait for a maintenance window and a slot before giving up (exit 8).",
        "24h",
        { min: "0s", max: "30d" },
      ),
      retry_interval: duration(
        "Time between tries for a slot (errors back off up to 8 times this).",
        "30s",
        { min: "100ms", max: "1h" },
      ),
      retry_jitter: integer(
        "Random spread of each retry interval, in percent either way (avoids thundering herds).",
        25,
        { min: 0, max: 100 },
      ),
      window: section(
        "The maintenance window: updates START only inside it (`prepare --now` overrides, " +
          "recorded). No days listed: any time.",
        {
          days: textList(
            'Days the window opens on, such as ["sat", "sun"]; empty: no window.',
            [],
            {
              pattern: DAY_PATTERN,
              expected: 'a list of day names such as ["sat", "sun"] or ["monday"]',
            },
          ),
          start: text("Wall-clock time the window opens, 24-hour.", "00:00", {
            pattern: TIME_PATTERN,
            expected: 'a time such as "22:30"',
          }),
          length: duration("How long the window stays open (may cross midnight).", "4h", {
            min: "1min",
            max: "7d",
          }),
          time_zone: text("IANA time zone of days and start.", "UTC", {
            check: (zone) => isTimeZone(zone) ? undefined : "it is not a known time zone",
            expected: 'an IANA time zone such as "Europe/Berlin" or "UTC"',
          }),
        },
      ),
      health: section(
        "The health gate: the slot is released only when the host is healthy again after finish.",
        {
          units: unitList("Units that must be active.", []),
          devices_reclaimed: flag("Every preserved device must have been reclaimed.", true),
          timeout: duration(
            "How long to wait for health; then the slot is kept (the rollout halts).",
            "10min",
            { min: "0s", max: "1d" },
          ),
          interval: duration("Time between health checks.", "5s", { min: "100ms", max: "5min" }),
        },
      ),
      etcd: section("The etcd v3 backend (its JSON gateway over HTTP).", {
        endpoints: textList(
          "Client URLs of the etcd members; tried in order, failing over on errors.",
          [],
          {
            pattern: /^https?:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?\/?$/,
            expected: 'a list of URLs such as ["https://10.0.0.1:2379"] (scheme, host, port)',
          },
        ),
        prefix: text("Key prefix of the slots.", "/liveupdate/fleet/", {
          pattern: /^[A-Za-z0-9._\/-]{1,200}\/$/,
          expected: 'a key prefix ending in "/", such as "/liveupdate/fleet/"',
        }),
        lease_ttl: duration(
          "Lease of a slot while the update can still be undone: a host that dies then frees it.",
          "30s",
          { min: "2s", max: "1h" },
        ),
        request_timeout: duration("How long one request may take.", "5s", {
          min: "100ms",
          max: "5min",
        }),
        halt: choice(
          'What a failed update stops until an operator runs `fleet release`: "fleet" (every ' +
            'group), "group" (its group) or "slot" (only the slot it keeps).',
          ["fleet", "group", "slot"],
          "fleet",
        ),
        username: text("etcd user (with password_file); empty: no authentication.", "", {
          pattern: /^[^\n\0]{0,256}$/,
          expected: "a user name",
        }),
        password_file: path("File holding the etcd user's password.", "", { optional: true }),
        ...tlsKeys("etcd members"),
      }),
      fleetlock: section(
        "The FleetLock backend (the protocol of zincati, airlock and fleetlock).",
        {
          url: text('Base URL of the server, such as "https://airlock.example:3333".', "", {
            check: (text) => text === "" ? undefined : urlProblem(text),
            expected: 'an http(s) URL such as "https://airlock.example:3333", or ""',
          }),
          request_timeout: duration("How long one request may take.", "10s", {
            min: "100ms",
            max: "5min",
          }),
          ...tlsKeys("server"),
        },
      ),
    },
  ),
};

/** The agent's configuration, as the rest of the agent reads it. */
export type Config = ValueOf<typeof SCHEMA>;

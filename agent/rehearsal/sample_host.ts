/**
 * The rehearsal's sample hypervisor host: a small PCI tree with two functions
 * passed through to VMs (tagged for preservation as config/70-liveupdate.rules'
 * first example would tag them) beside the host's own disk and NIC, and sample
 * services standing for a VMM:
 *
 * - `vm@web.service`, `vm@db.service`: the VMM process of each VM, using its
 *   passthrough device (stopped in phase "reboot", started again in "updated").
 * - `vm-checkpoint.service` (`WantedBy=liveupdate-prepare.target`): pauses every
 *   VM and saves its state while the devices stay attached.
 * - `vm-restore.service` (`WantedBy=liveupdate-updated.target`): resumes every
 *   checkpointed VM on its preserved device, which reclaims the device.
 *
 * Reclaiming crosses namespaces: the services run in the private manager's PID
 * and mount namespaces, where the simulator's mount (`/proc/<pid>/root/…` of
 * another PID namespace) cannot be reached. So `vm-restore` does what a VMM does
 * with a real kernel — it asks for its device and waits until it has it — over a
 * file channel in the stage's directory (visible in both namespaces): it writes
 * `reclaim/<vm>.request` (the device path) and waits for `reclaim/<vm>.done`.
 * The rehearsal plays the kernel's driver on the other side (`reclaim_channel.ts`):
 * it re-attaches the device in the simulated kernel (`reclaim PATH`, which sets
 * `reclaimed`) and answers. The services log what they do to `workload.log`.
 *
 * @module
 */

import type { SimDevice, SimTree } from "./tree.ts";

/** One VM of the sample host. */
export interface SampleVm {
  name: string;
  /** Its VMM unit (the device's LIVEUPDATE_UNIT). */
  unit: string;
  /** Its passthrough device, below /sys/devices. */
  device: string;
}

const ROOT = "pci0000:00";
const PORT_VMS = `${ROOT}/0000:00:01.0`;
const PORT_DISK = `${ROOT}/0000:00:02.0`;
const PORT_NET = `${ROOT}/0000:00:03.0`;

/** The VMs of the sample host. */
export const SAMPLE_VMS: readonly SampleVm[] = [
  { name: "web", unit: "vm@web.service", device: `${PORT_VMS}/0000:01:00.0` },
  { name: "db", unit: "vm@db.service", device: `${PORT_VMS}/0000:01:00.1` },
];

function port(path: string): SimDevice {
  const name = path.slice(path.lastIndexOf("/") + 1);
  return {
    path,
    subsystem: "pci",
    driver: "pcieport",
    busSupport: true,
    driverSupport: true,
    uevent: { DRIVER: "pcieport", PCI_ID: "8086:7a38", PCI_SLOT_NAME: name },
  };
}

/** The sample host's devices. */
export function sampleTree(): SimTree {
  const vf = (vm: SampleVm): SimDevice => {
    const name = vm.device.slice(vm.device.lastIndexOf("/") + 1);
    return {
      path: vm.device,
      subsystem: "pci",
      driver: "vfio-pci",
      busSupport: true,
      driverSupport: true,
      uevent: {
        DRIVER: "vfio-pci",
        PCI_CLASS: "20000",
        PCI_ID: "15b3:101e",
        PCI_SLOT_NAME: name,
      },
      udevProperties: {
        ID_VENDOR_FROM_DATABASE: "Mellanox Technologies",
        LIVEUPDATE_UNIT: vm.unit,
      },
      tags: ["liveupdate"],
    };
  };
  const disk = `${PORT_DISK}/0000:02:00.0`;
  const nic = `${PORT_NET}/0000:03:00.0`;
  return {
    devices: [
      { path: ROOT, busSupport: true, driverSupport: true, uevent: {} },
      port(PORT_VMS),
      ...SAMPLE_VMS.map(vf),
      port(PORT_DISK),
      {
        path: disk,
        subsystem: "pci",
        driver: "nvme",
        busSupport: true,
        driverSupport: false,
        uevent: { DRIVER: "nvme", PCI_ID: "144d:a80a", PCI_SLOT_NAME: "0000:02:00.0" },
      },
      {
        path: `${disk}/nvme/nvme0`,
        subsystem: "nvme",
        busSupport: true,
        driverSupport: false,
        devnum: { kind: "c", major: 240, minor: 0 },
        uevent: { MAJOR: "240", MINOR: "0", DEVNAME: "nvme0" },
      },
      {
        path: `${disk}/nvme/nvme0/nvme0n1`,
        subsystem: "block",
        busSupport: true,
        driverSupport: false,
        devnum: { kind: "b", major: 259, minor: 0 },
        uevent: { MAJOR: "259", MINOR: "0", DEVNAME: "nvme0n1", DEVTYPE: "disk" },
        udevProperties: { ID_SERIAL: "Samsung_SSD_980_PRO_S64DNX0R123456" },
      },
      port(PORT_NET),
      {
        path: nic,
        subsystem: "pci",
        driver: "mlx5_core",
        busSupport: true,
        driverSupport: true,
        uevent: { DRIVER: "mlx5_core", PCI_ID: "15b3:1017", PCI_SLOT_NAME: "0000:03:00.0" },
      },
      {
        path: `${nic}/net/eth0`,
        subsystem: "net",
        busSupport: true,
        driverSupport: true,
        ifindex: 2,
        uevent: { INTERFACE: "eth0", IFINDEX: "2" },
      },
    ],
  };
}

/** A single-quoted shell word. */
function sh(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The sample services' scripts, by file name below `<dir>/bin/`. */
export function sampleScripts(dir: string): Record<string, string> {
  const log = `${dir}/workload.log`;
  const vms = `${dir}/vms`;
  const channel = `${dir}/reclaim`;
  const say = (who: string) => `say() { echo "${who}: $*" >> ${sh(log)}; }`;
  return {
    vmm: [
      "#!/bin/sh",
      "# The sample VMM: runs VM $1 on its passthrough device (vms/$1.conf).",
      "set -eu",
      "vm=$1",
      say("vm@$vm"),
      `. ${sh(vms)}/"$vm.conf"`,
      'say "VM $vm running, passthrough device ${DEVICE##*/} attached"',
      "exec sleep infinity",
      "",
    ].join("\n"),
    "vmm-stopped": [
      "#!/bin/sh",
      "set -eu",
      "vm=$1",
      say("vm@$vm"),
      'say "VMM process of VM $vm exited (the VM stays in memory)"',
      "",
    ].join("\n"),
    "vm-checkpoint": [
      "#!/bin/sh",
      "# Pauses every VM and saves its state; the passthrough devices stay attached",
      "# (the kernel preserves them across the kexec).",
      "set -eu",
      say("vm-checkpoint"),
      `for conf in ${sh(vms)}/*.conf; do`,
      '  vm=$(basename "$conf" .conf)',
      '  . "$conf"',
      `  printf 'DEVICE=%s\\nSAVED=%s\\n' "$DEVICE" "$(date -u +%FT%TZ)" > ${
        sh(vms)
      }/"$vm.checkpoint"`,
      '  say "VM $vm paused, state saved; device ${DEVICE##*/} stays attached"',
      "done",
      "",
    ].join("\n"),
    "vm-restore": [
      "#!/bin/sh",
      "# Resumes every checkpointed VM on its preserved device: asks the kernel for the",
      "# device (reclaim/<vm>.request) and waits until it is re-attached (<vm>.done).",
      "set -eu",
      say("vm-restore"),
      `mkdir -p ${sh(channel)}`,
      `for checkpoint in ${sh(vms)}/*.checkpoint; do`,
      '  [ -e "$checkpoint" ] || continue',
      '  vm=$(basename "$checkpoint" .checkpoint)',
      '  . "$checkpoint"',
      `  echo "$DEVICE" > ${sh(channel)}/"$vm.tmp"`,
      `  mv ${sh(channel)}/"$vm.tmp" ${sh(channel)}/"$vm.request"`,
      "  tries=0",
      `  while [ ! -e ${sh(channel)}/"$vm.done" ]; do`,
      "    tries=$((tries + 1))",
      '    if [ "$tries" -gt 200 ]; then say "VM $vm: device ${DEVICE##*/} was not re-attached"; exit 1; fi',
      "    sleep 0.05",
      "  done",
      `  if [ -s ${sh(channel)}/"$vm.done" ]; then`,
      `    say "VM $vm: re-attaching ${"$"}{DEVICE##*/} failed: $(cat ${sh(channel)}/"$vm.done")"`,
      "    exit 1",
      "  fi",
      '  rm -f "$checkpoint"',
      '  say "VM $vm resumed from its checkpoint on device ${DEVICE##*/}"',
      "done",
      "",
    ].join("\n"),
  };
}

/** The sample services (unit file name → contents), running the scripts in `<dir>/bin/`. */
export function sampleUnits(dir: string): Record<string, string> {
  const bin = `${dir}/bin`;
  return {
    "vm@.service": [
      "[Unit]",
      "Description=Sample VMM of VM %i (stands for a hypervisor process)",
      "After=vm-restore.service",
      "[Service]",
      `ExecStart=${bin}/vmm %i`,
      `ExecStopPost=${bin}/vmm-stopped %i`,
      "",
    ].join("\n"),
    "vm-checkpoint.service": [
      "[Unit]",
      "Description=Sample checkpoint before a live update: pause every VM, save its state",
      "[Service]",
      "Type=oneshot",
      "RemainAfterExit=yes",
      `ExecStart=${bin}/vm-checkpoint`,
      "[Install]",
      "WantedBy=liveupdate-prepare.target",
      "",
    ].join("\n"),
    "vm-restore.service": [
      "[Unit]",
      "Description=Sample restore after a live update: resume every VM on its preserved device",
      "[Service]",
      "Type=oneshot",
      "RemainAfterExit=yes",
      `ExecStart=${bin}/vm-restore`,
      "TimeoutStartSec=30s",
      "[Install]",
      "WantedBy=liveupdate-updated.target",
      "",
    ].join("\n"),
  };
}

/** The units the sample host enables (hooked into phase targets). */
export const SAMPLE_HOOKED_UNITS = ["vm-checkpoint.service", "vm-restore.service"] as const;

/** The scenario's configuration: the VMMs stop before the kexec and come back after it. */
export function sampleConfig(): string {
  const vms = JSON.stringify(SAMPLE_VMS.map((vm) => vm.unit));
  return [
    "# The sample host's phases. vm-checkpoint.service and vm-restore.service hook",
    "# themselves into liveupdate-prepare.target and liveupdate-updated.target.",
    "[phases.reboot]",
    `stop = ${vms}`,
    'timeout = "30s"',
    "[phases.updated]",
    `start = ${vms}`,
    'timeout = "30s"',
    "[phases.cancel]",
    `start = ${vms}`,
    'timeout = "30s"',
    "[devices]",
    'reclaim_timeout = "30s"',
    "",
  ].join("\n");
}

/**
 * The sample host's files below the stage's directory `dir`: the services'
 * scripts (`bin/`), the VM definitions the VMMs read (`vms/<vm>.conf`), the
 * reclaim channel (`reclaim/`) and the workload's log.
 */
export function sampleFiles(dir: string): Record<string, { text: string; mode?: number }> {
  const files: Record<string, { text: string; mode?: number }> = {};
  for (const [name, text] of Object.entries(sampleScripts(dir))) {
    files[`bin/${name}`] = { text, mode: 0o755 };
  }
  for (const vm of SAMPLE_VMS) files[`vms/${vm.name}.conf`] = { text: `DEVICE=${vm.device}\n` };
  files["reclaim/.keep"] = { text: "" };
  files["workload.log"] = { text: "" };
  return files;
}

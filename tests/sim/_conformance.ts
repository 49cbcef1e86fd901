/**
 * Helpers of the simulator's conformance tests: a small hand-made tree that
 * exercises every rule, writes that report the errno, and poll(2) through FFI.
 *
 * @module
 */

import type { SimDevice, SimTree } from "./tree.ts";
import { errnoOf, type LuoState, type Sim } from "./harness.ts";
import { cString, type Libc } from "../../agent/host/libc.ts";

const encoder = new TextEncoder();

/** Device paths of {@link smallTree}, by role. */
export const DEV = {
  root: "pci0000:00",
  port: "pci0000:00/0000:00:01.0",
  a: "pci0000:00/0000:00:01.0/0000:01:00.0",
  b: "pci0000:00/0000:00:01.0/0000:01:00.1",
  eth0: "pci0000:00/0000:00:01.0/0000:01:00.0/net/eth0",
  badPort: "pci0000:00/0000:00:02.0",
  belowBadPort: "pci0000:00/0000:00:02.0/0000:02:00.0",
  nvme: "pci0000:00/0000:00:03.0",
  nvmeChar: "pci0000:00/0000:00:03.0/nvme/nvme0",
  nvmeDisk: "pci0000:00/0000:00:03.0/nvme/nvme0/nvme0n1",
  platform: "platform",
  serial: "platform/serial8250",
  misc: "virtual/misc/fuse",
} as const;

function device(
  path: string,
  extra: Partial<SimDevice> = {},
): SimDevice {
  return { path, busSupport: true, driverSupport: true, uevent: {}, ...extra };
}

/**
 * A tree that covers every layout and ancestor rule: a root without bus,
 * supported PCI functions, a net class device below a grouping directory, a
 * port whose bus lacks live-update support, an NVMe driver without support with
 * char and block class devices, a platform device, and a class device with a
 * driver but no listed ancestor (virtual/misc/ are grouping directories).
 */
export function smallTree(): SimTree {
  const pci = (path: string, driver: string, extra: Partial<SimDevice> = {}) =>
    device(path, {
      subsystem: "pci",
      driver,
      uevent: { DRIVER: driver, PCI_SLOT_NAME: path.slice(path.lastIndexOf("/") + 1) },
      ...extra,
    });
  return {
    devices: [
      device(DEV.root),
      pci(DEV.port, "pcieport"),
      pci(DEV.a, "vfio-pci"),
      pci(DEV.b, "vfio-pci"),
      device(DEV.eth0, {
        subsystem: "net",
        ifindex: 2,
        uevent: { INTERFACE: "eth0", IFINDEX: "2" },
      }),
      pci(DEV.badPort, "pcieport", { busSupport: false }),
      pci(DEV.belowBadPort, "vfio-pci"),
      pci(DEV.nvme, "nvme", { driverSupport: false }),
      device(DEV.nvmeChar, {
        subsystem: "nvme",
        driverSupport: false,
        devnum: { kind: "c", major: 240, minor: 0 },
        uevent: { MAJOR: "240", MINOR: "0", DEVNAME: "nvme0" },
      }),
      device(DEV.nvmeDisk, {
        subsystem: "block",
        driverSupport: false,
        devnum: { kind: "b", major: 259, minor: 0 },
        uevent: { MAJOR: "259", MINOR: "0", DEVNAME: "nvme0n1", DEVTYPE: "disk" },
      }),
      device(DEV.platform),
      device(DEV.serial, { subsystem: "platform", driver: "serial8250" }),
      device(DEV.misc, {
        subsystem: "misc",
        driver: "fuse",
        devnum: { kind: "c", major: 10, minor: 229 },
        uevent: { MAJOR: "10", MINOR: "229", DEVNAME: "fuse" },
      }),
    ],
  };
}

/** The outcome of a write: "ok" or the errno name. */
export type Outcome = "ok" | string;

/**
 * Writes `value` to `file` with one write(2) (opened O_WRONLY|O_TRUNC, as the
 * agent and Deno's helpers do) and returns "ok" or the errno name.
 */
export async function write(file: string, value: string | Uint8Array): Promise<Outcome> {
  try {
    await Deno.writeFile(file, typeof value === "string" ? encoder.encode(value) : value, {
      create: false,
    });
    return "ok";
  } catch (error) {
    const errno = errnoOf(error);
    if (!errno) throw error;
    return errno;
  }
}

/** Reads a file; "ok:<contents>" or the errno name. */
export async function read(file: string): Promise<string> {
  try {
    return `ok:${await Deno.readTextFile(file)}`;
  } catch (error) {
    const errno = errnoOf(error);
    if (!errno) throw error;
    return errno;
  }
}

/** The state the simulator reports. */
export async function state(sim: Sim): Promise<LuoState> {
  return (await Deno.readTextFile(sim.path("kernel/liveupdate/state"))).trim() as LuoState;
}

/** Brings a simulator from any state to `target` through the ABI and kexec. */
export async function goToState(sim: Sim, target: LuoState): Promise<void> {
  const prepare = sim.path("kernel/liveupdate/prepare");
  const finish = sim.path("kernel/liveupdate/finish");
  for (let step = 0; step < 4; step++) {
    const now = await state(sim);
    if (now === target) return;
    if (now === "updated") await Deno.writeTextFile(finish, "1");
    else if (now === "prepared" && target === "normal") await Deno.writeTextFile(prepare, "0");
    else if (now === "prepared") await sim.kexec();
    else await Deno.writeTextFile(prepare, "1");
  }
  throw new Error(`Could not bring the simulator to ${target}`);
}

export const POLLIN = 0x1;
export const POLLPRI = 0x2;
export const POLLERR = 0x8;
const O_RDONLY = 0;

/** An attribute opened through libc, for poll(2). */
export class PolledFile implements Disposable {
  readonly fd: number;

  constructor(private readonly libc: Libc, path: string) {
    this.fd = libc.symbols.open(cString(path), O_RDONLY, 0);
    if (this.fd < 0) throw new Error(`open ${path}: ${libc.errnoName()}`);
  }

  /** pread from offset 0 (re-arms kernfs poll); returns the contents. */
  read(): string {
    const buffer = new Uint8Array(4096);
    const n = Number(this.libc.symbols.pread(this.fd, buffer, BigInt(buffer.length), 0n));
    if (n < 0) throw new Error(`pread: ${this.libc.errnoName()}`);
    return new TextDecoder().decode(buffer.subarray(0, n));
  }

  /** pread's errno name, or "ok". */
  readErrno(): string {
    const buffer = new Uint8Array(4096);
    const n = Number(this.libc.symbols.pread(this.fd, buffer, BigInt(buffer.length), 0n));
    return n < 0 ? this.libc.errnoName() : "ok";
  }

  /** poll for POLLPRI with a timeout (ms); resolves with revents (0 on timeout). */
  async poll(timeoutMs: number, events = POLLPRI): Promise<number> {
    const fds = pollfd(this.fd, events);
    const n = await this.libc.symbols.poll(fds, 1n, timeoutMs);
    if (n < 0) throw new Error(`poll: ${this.libc.errnoName()}`);
    return n === 0 ? 0 : new DataView(fds.buffer).getInt16(6, true);
  }

  /** poll without waiting. */
  pollNow(events = POLLPRI): number {
    const fds = pollfd(this.fd, events);
    const n = this.libc.symbols.poll_now(fds, 1n, 0);
    if (n < 0) throw new Error(`poll: ${this.libc.errnoName()}`);
    return n === 0 ? 0 : new DataView(fds.buffer).getInt16(6, true);
  }

  [Symbol.dispose](): void {
    this.libc.symbols.close(this.fd);
  }
}

function pollfd(fd: number, events: number): Uint8Array<ArrayBuffer> {
  const fds = new Uint8Array(8);
  const view = new DataView(fds.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  return fds;
}

/** Raw write(2) of bytes on a fresh O_WRONLY descriptor: bytes written, or the errno name. */
export function rawWrite(
  libc: Libc,
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
): number | string {
  const fd = libc.symbols.open(cString(path), 1, /* O_WRONLY */ 0);
  if (fd < 0) return libc.errnoName();
  try {
    const n = Number(libc.symbols.write(fd, bytes, BigInt(bytes.length)));
    return n < 0 ? libc.errnoName() : n;
  } finally {
    libc.symbols.close(fd);
  }
}

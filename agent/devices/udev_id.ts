/**
 * udev's device ids: the names of the files in the udev database
 * (`data/<id>`, `tags/<tag>/<id>`). udev derives them as
 *
 * - `b<major>:<minor>` / `c<major>:<minor>` — a block / character device node,
 * - `n<ifindex>` — a network interface,
 * - `+<subsystem>:<sysname>` — any other device (`+pci:0000:01:00.0`),
 * - `+drivers:<subsystem>:<driver>` — a driver (not a device: never preserved).
 *
 * @module
 */

/** A parsed udev device id. */
export type UdevId =
  | { kind: "block" | "char"; id: string; major: number; minor: number }
  | { kind: "net"; id: string; ifindex: number }
  | { kind: "subsystem"; id: string; subsystem: string; sysname: string }
  | { kind: "driver"; id: string; subsystem: string; driver: string };

const DEVNUM = /^([bc])(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9})$/;
const NET = /^n([1-9][0-9]{0,9})$/;
const MAX_NAME = 255;
const SUBSYSTEM = /^[A-Za-z0-9_.-]{1,64}$/;

// Linux dev_t: 12-bit major, 20-bit minor.
const MAX_MAJOR = 0xfff;
const MAX_MINOR = 0xfffff;
const MAX_IFINDEX = 0x7fffffff;

/** A sysfs directory entry name: 1–255 characters, no '/', no NUL or control characters. */
function validName(name: string): boolean {
  return name.length <= MAX_NAME && NAME.test(name) && name !== "." && name !== "..";
}

// deno-lint-ignore no-control-regex -- control characters are exactly what the name must not hold
const NAME = /^[^\x00-\x1f\x7f/]+$/;

/**
 * Parses a udev device id; returns a sentence saying why not when `text` is not
 * one of udev's id forms.
 */
export function parseUdevId(text: string): UdevId | { problem: string } {
  const devnum = DEVNUM.exec(text);
  if (devnum) {
    const major = Number(devnum[2]);
    const minor = Number(devnum[3]);
    if (major > MAX_MAJOR || minor > MAX_MINOR) {
      return { problem: `device number ${major}:${minor} is out of range` };
    }
    return { kind: devnum[1] === "b" ? "block" : "char", id: text, major, minor };
  }
  const net = NET.exec(text);
  if (net) {
    const ifindex = Number(net[1]);
    if (ifindex > MAX_IFINDEX) return { problem: `interface index ${ifindex} is out of range` };
    return { kind: "net", id: text, ifindex };
  }
  if (text.startsWith("+")) {
    const colon = text.indexOf(":");
    const subsystem = colon < 0 ? "" : text.slice(1, colon);
    if (!SUBSYSTEM.test(subsystem)) {
      return { problem: 'it does not start with "+<subsystem>:"' };
    }
    const rest = text.slice(colon + 1);
    if (subsystem === "drivers") {
      const second = rest.indexOf(":");
      const driverSubsystem = second < 0 ? "" : rest.slice(0, second);
      const driver = rest.slice(second + 1);
      if (!SUBSYSTEM.test(driverSubsystem) || !validName(driver)) {
        return { problem: 'it is not of the form "+drivers:<subsystem>:<driver>"' };
      }
      return { kind: "driver", id: text, subsystem: driverSubsystem, driver };
    }
    if (!validName(rest)) return { problem: `"${rest}" is not a device name` };
    return { kind: "subsystem", id: text, subsystem, sysname: rest };
  }
  return {
    problem: 'it is none of udev\'s id forms ("b<major>:<minor>", "c<major>:<minor>", ' +
      '"n<ifindex>", "+<subsystem>:<name>")',
  };
}

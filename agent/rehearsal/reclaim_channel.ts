/**
 * The kernel's side of the rehearsal's reclaim channel (see sample_host.ts): a
 * restore service in the private manager's namespaces asks for a preserved device
 * by writing `<channel>/<vm>.request` (the device path below /sys/devices); this
 * re-attaches the device in the simulated kernel (control command `reclaim PATH`,
 * which sets its `reclaimed` flag, as the device's driver would when the VMM opens
 * it) and answers with `<vm>.done`: empty when the device is re-attached, the
 * reason otherwise. Requests are files, written atomically (rename), in a directory
 * both namespaces see.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import type { Sim } from "./simulator.ts";

/** One request served. */
export interface ReclaimServed {
  vm: string;
  device: string;
  /** Why it could not be re-attached, if it could not. */
  problem?: string;
}

/** A running channel; `stop()` ends it after the request in hand. */
export interface ReclaimChannel {
  stop(): Promise<void>;
}

async function answer(channel: string, vm: string, text: string): Promise<void> {
  const temporary = `${channel}/.${vm}.done.tmp`;
  await Deno.writeTextFile(temporary, text);
  await Deno.rename(temporary, `${channel}/${vm}.done`);
}

/**
 * Serves reclaim requests in `channel` against `sim` until stopped, calling
 * `served` after each. Needs `--allow-read` and `--allow-write` on `channel`.
 */
export function serveReclaims(
  channel: string,
  sim: Pick<Sim, "setReclaimed">,
  served: (request: ReclaimServed) => void,
  intervalMs = 50,
): ReclaimChannel {
  let stopped = false;
  let wake: () => void = () => {};
  const loop = (async () => {
    while (!stopped) {
      const names: string[] = [];
      try {
        for await (const entry of Deno.readDir(channel)) {
          if (entry.isFile && entry.name.endsWith(".request")) names.push(entry.name);
        }
      } catch {
        // not there (yet)
      }
      for (const name of names.sort()) {
        const vm = name.slice(0, -".request".length);
        const path = `${channel}/${name}`;
        let device = "";
        let problem: string | undefined;
        try {
          device = (await Deno.readTextFile(path)).trim();
          if (!device) throw new Error("the request names no device");
          await sim.setReclaimed(device);
        } catch (error) {
          problem = describeError(error);
        }
        await Deno.remove(path).catch(() => {});
        await answer(channel, vm, problem ?? "").catch(() => {});
        served({ vm, device, ...(problem ? { problem } : {}) });
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake();
      await loop;
    },
  };
}

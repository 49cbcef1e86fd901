/**
 * Following what the rehearsal's machine does while the agent runs: a growing
 * text file (the workload's log) and the agent's newest attempt record (its
 * journal of steps), both by polling.
 *
 * @module
 */

import type { AttemptRecord } from "../store/mod.ts";

/** A running follower; `stop()` reads once more and ends it. */
export interface Follower {
  stop(): Promise<void>;
}

function pollLoop(step: () => Promise<void>, intervalMs: number): Follower {
  let stopped = false;
  let wake: () => void = () => {};
  const loop = (async () => {
    while (!stopped) {
      await step();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await step();
  })();
  return {
    async stop() {
      stopped = true;
      wake();
      await loop;
    },
  };
}

/**
 * Follows a growing text file (the workload's log), calling `line` for each new
 * complete line, until stopped. Needs `--allow-read` on `file`.
 */
export function followLines(
  file: string,
  line: (text: string) => void,
  intervalMs = 50,
): Follower {
  let offset = 0;
  let partial = "";
  const decoder = new TextDecoder();
  const readNew = async () => {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(file);
    } catch {
      return;
    }
    if (bytes.length <= offset) return;
    partial += decoder.decode(bytes.subarray(offset));
    offset = bytes.length;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const text of lines) if (text.trim()) line(text);
  };
  return pollLoop(readNew, intervalMs);
}

/**
 * Follows the newest attempt record in `<stateDir>/attempts/`, calling `changed`
 * whenever its content changes (a step journaled, the status moved). Needs
 * `--allow-read` there.
 */
export function followRecord(
  stateDir: string,
  changed: (record: AttemptRecord) => void,
  intervalMs = 50,
): Follower {
  let last = "";
  return pollLoop(async () => {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(`${stateDir}/attempts`)) {
        if (entry.isFile && entry.name.endsWith(".json")) names.push(entry.name);
      }
    } catch {
      return;
    }
    const newest = names.sort().at(-1);
    if (!newest) return;
    let text: string;
    try {
      text = await Deno.readTextFile(`${stateDir}/attempts/${newest}`);
    } catch {
      return;
    }
    if (text === last) return;
    last = text;
    try {
      changed(JSON.parse(text) as AttemptRecord);
    } catch {
      // written atomically: a partial file cannot be seen
    }
  }, intervalMs);
}

import assert from "node:assert/strict";
import { ExitCode } from "../exit_codes.ts";
import type { LuoState, StateMachine, StateObservation, WatchOptions } from "./kernel.ts";
import { StateWaitTimeoutError, waitForState } from "./wait.ts";

/** A state machine whose watch yields `states` spaced `gap` ms apart, then waits for abort. */
function scripted(states: LuoState[], gap: number): StateMachine & { active: () => number } {
  let active = 0;
  const unused = () => Promise.reject(new Error("unused"));
  return {
    state: () => Promise.resolve(states[0]!),
    prepare: unused,
    cancel: unused,
    finish: unused,
    active: () => active,
    async *watch(options: WatchOptions = {}): AsyncGenerator<StateObservation> {
      active++;
      try {
        for (const [index, state] of states.entries()) {
          if (index > 0) await new Promise((resolve) => setTimeout(resolve, gap));
          if (options.signal?.aborted) return;
          yield { state, via: index === 0 ? "initial" : "notification" };
        }
        await new Promise<void>((resolve) => {
          if (options.signal?.aborted) return resolve();
          options.signal?.addEventListener("abort", () => resolve(), { once: true });
        });
      } finally {
        active--;
      }
    },
  };
}

Deno.test("waitForState: resolves at once, or when the state arrives", async () => {
  const machine = scripted(["normal", "prepared", "updated"], 5);
  assert.equal(await waitForState(machine, ["normal"], { timeout: 1000 }), "normal");
  assert.equal(await waitForState(machine, ["updated"], { timeout: 10_000 }), "updated");
  assert.equal(machine.active(), 0);
});

Deno.test("waitForState: times out with the last state and the timeout exit code", async () => {
  const machine = scripted(["prepared"], 5);
  await assert.rejects(waitForState(machine, ["normal"], { timeout: 20 }), (error: unknown) => {
    assert.ok(error instanceof StateWaitTimeoutError);
    assert.equal(error.last, "prepared");
    assert.equal(error.exitCode, ExitCode.Timeout);
    assert.match(error.message, /did not become "normal" within 20 ms; it is "prepared"/);
    return true;
  });
  assert.equal(machine.active(), 0);
});

Deno.test("waitForState: aborting rejects with the signal's reason", async () => {
  const machine = scripted(["prepared"], 5);
  const controller = new AbortController();
  const waiting = waitForState(machine, ["normal"], {
    timeout: 60_000,
    signal: controller.signal,
  });
  controller.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  assert.equal(machine.active(), 0);
});

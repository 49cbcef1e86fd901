/**
 * Waiting for the live-update state, on top of the state watcher.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import type { LuoState, StateMachine } from "./kernel.ts";

/** The state did not arrive in time. */
export class StateWaitTimeoutError extends AgentError {
  override name = "StateWaitTimeoutError";
  /** The last state seen. */
  readonly last: LuoState | undefined;

  constructor(message: string, last: LuoState | undefined) {
    super(message, { exitCode: ExitCode.Timeout });
    this.last = last;
  }
}

/** Options of {@link waitForState}. */
export interface WaitForStateOptions {
  /** Give up after this many ms (StateWaitTimeoutError). */
  timeout: number;
  /** Aborting rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The watcher's re-read interval in ms (the configured one by default). */
  interval?: number;
}

/**
 * Resolves with the state as soon as it is one of `wanted` (at once if it already
 * is). Rejects with StateWaitTimeoutError after `options.timeout`, with the
 * signal's reason when aborted, and with KernelError when the state cannot be read.
 */
export async function waitForState(
  machine: StateMachine,
  wanted: readonly LuoState[],
  options: WaitForStateOptions,
): Promise<LuoState> {
  options.signal?.throwIfAborted();
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeout);
  const forward = () => controller.abort();
  options.signal?.addEventListener("abort", forward, { once: true });
  let last: LuoState | undefined;
  try {
    for await (
      const { state } of machine.watch({ signal: controller.signal, interval: options.interval })
    ) {
      last = state;
      if (wanted.includes(state)) return state;
    }
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", forward);
    controller.abort();
  }
  options.signal?.throwIfAborted();
  if (timedOut) {
    throw new StateWaitTimeoutError(
      `The live-update state did not become ${wanted.map((s) => `"${s}"`).join(" or ")} within ` +
        `${options.timeout} ms; it is "${last}".`,
      last,
    );
  }
  throw new AgentError("The state watch ended unexpectedly.");
}

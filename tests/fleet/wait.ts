/**
 * Small waiting helpers for the multi-process fleet tests.
 *
 * @module
 */

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `condition` every `intervalMs` until it returns true; throws after
 * `timeoutMs` naming `what` was awaited. The timeout is a bound against hangs,
 * generous on purpose (the machine is shared): never a measurement.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs: number; what: string; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${options.timeoutMs} ms waiting for ${options.what}`);
    }
    await delay(options.intervalMs ?? 50);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Retry delays: a steady interval spread by random jitter, so a thousand hosts
 * waiting for the same slots do not ask in lockstep; errors back off.
 *
 * @module
 */

/** The longest error back-off, in multiples of the retry interval. */
export const MAX_BACKOFF_FACTOR = 8;

/**
 * `intervalMs` spread by up to `jitterPercent` either way: 30s with 25 % is a
 * delay from 22.5s to 37.5s. `random` returns a number in [0, 1).
 */
export function jittered(
  intervalMs: number,
  jitterPercent: number,
  random: () => number = Math.random,
): number {
  const spread = (jitterPercent / 100) * (2 * random() - 1);
  return Math.max(0, Math.round(intervalMs * (1 + spread)));
}

/**
 * The delay after `failures` errors in a row (1 or more): the interval doubled per
 * failure up to {@link MAX_BACKOFF_FACTOR} times, then jittered.
 */
export function backoff(
  intervalMs: number,
  failures: number,
  jitterPercent: number,
  random: () => number = Math.random,
): number {
  const factor = Math.min(MAX_BACKOFF_FACTOR, 2 ** Math.max(0, failures - 1));
  return jittered(intervalMs * factor, jitterPercent, random);
}

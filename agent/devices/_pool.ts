/**
 * Bounded concurrency for per-device kernel calls: a backend that waits on real
 * I/O (the FUSE simulator, a slow sysfs) gets several calls in flight, while a
 * backend that answers synchronously costs nothing extra.
 *
 * @module
 */

/** How many kernel calls a reconcile keeps in flight. */
export const IN_FLIGHT = 16;

/** Runs `task` for every item with at most `limit` running at once, in order of start. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await task(items[index]!, index);
    }
  };
  const workers: Promise<void>[] = [];
  for (let i = 0; i < Math.min(limit, items.length); i++) workers.push(worker());
  await Promise.all(workers);
}

// deno-lint-ignore-file no-console -- test infrastructure that reports progress on stderr
/**
 * Progress lines of the VM tier (image builds, boots), on standard error so
 * `deno test` output stays readable.
 *
 * @module
 */

const started = performance.now();

/** Prints one progress line, prefixed with the seconds since this process started. */
export function progress(message: string): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  console.error(`[vm ${seconds}s] ${message}`);
}

/** Prints a block of text (logs of a failed run) as it is. */
export function printBlock(title: string, text: string): void {
  console.error(`\n----- ${title} -----\n${text.trimEnd()}\n----- end of ${title} -----`);
}

/**
 * The V8 flags the agent runs under, beside its permission flags: baked into the
 * compiled binary (`deno compile --v8-flags=…`), passed by the launcher the VM tier
 * installs, and used by the benchmark that measures the agent
 * (tests/bench/devices_bench.ts), so what is measured is what runs.
 *
 * - `--max-semi-space-size=2` (MiB): V8's young generation otherwise grows to 16
 *   MiB per semi-space while a selection of 10,000 devices allocates its short-lived
 *   records; capped, the garbage is collected sooner and the peak memory of a
 *   100,000-device run stays below 80 MB (≈ 75 instead of ≈ 100) for the same CPU time.
 * - `--optimize-for-size`: V8's heap grows in smaller steps.
 *
 * @module
 */

/** The flags given to V8 (`--v8-flags=` takes them comma-separated). */
export const V8_FLAGS = ["--max-semi-space-size=2", "--optimize-for-size"] as const;

/** The Deno arguments that pass {@link V8_FLAGS}, for `deno run` and `deno compile`. */
export const RUNTIME_FLAGS: readonly string[] = [`--v8-flags=${V8_FLAGS.join(",")}`];

/**
 * How guest programs report to the host: one line `@@LUO {json}` per record on
 * the serial console (bigints as strings). The host side (tests/mainline/qemu.ts)
 * picks these lines out of the console output.
 *
 * @module
 */

import { LiveupdateError } from "../../../agent/kernel/mainline/errors.ts";

const encoder = new TextEncoder();

/** Writes one record. */
export function emit(record: Record<string, unknown> & { type: string }): void {
  const line = "@@LUO " +
    JSON.stringify(record, (_key, value) => typeof value === "bigint" ? String(value) : value) +
    "\n";
  const bytes = encoder.encode(line);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/** Runs one named check and reports its outcome (and what it returned) as a record. */
export async function check(
  boot: number,
  name: string,
  body: () => unknown | Promise<unknown>,
): Promise<boolean> {
  const started = performance.now();
  try {
    const detail = await body();
    emit({ type: "check", boot, name, ok: true, ms: performance.now() - started, detail });
    return true;
  } catch (error) {
    emit({
      type: "check",
      boot,
      name,
      ok: false,
      ms: performance.now() - started,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      stack: error instanceof Error ? error.stack : undefined,
    });
    return false;
  }
}

/** What {@link expectRefusal} expects of the error. */
export interface Refusal {
  errno: string;
  request?: string;
  /** A part the message must contain. */
  says?: string;
}

/**
 * Runs `body`, which must throw a LiveupdateError with `expected.errno` (and the
 * request and message part, if given); returns the error's message and exit code.
 */
export function expectRefusal(body: () => unknown, expected: Refusal): Record<string, unknown> {
  try {
    body();
  } catch (error) {
    if (!(error instanceof LiveupdateError)) throw error;
    const problems: string[] = [];
    if (error.errno !== expected.errno) problems.push(`errno ${error.errno} ≠ ${expected.errno}`);
    if (expected.request && error.request !== expected.request) {
      problems.push(`request ${error.request} ≠ ${expected.request}`);
    }
    if (expected.says && !error.message.includes(expected.says)) {
      problems.push(`message lacks ${JSON.stringify(expected.says)}`);
    }
    if (problems.length) throw new Error(`${problems.join("; ")} — ${error.message}`);
    return { errno: error.errno, message: error.message, exitCode: error.exitCode };
  }
  throw new Error(`Expected ${expected.errno}, but it succeeded`);
}

/** Async variant of {@link expectRefusal}. */
export async function expectRefusalAsync(
  body: () => Promise<unknown>,
  expected: Refusal,
): Promise<Record<string, unknown>> {
  let failure: unknown;
  try {
    await body();
  } catch (error) {
    failure = error;
  }
  if (failure === undefined) throw new Error(`Expected ${expected.errno}, but it succeeded`);
  return expectRefusal(() => {
    throw failure;
  }, expected);
}

/** The boot number from the command line (`luotest.boot=N`, default 1). */
export function bootNumber(): number {
  const match = Deno.readTextFileSync("/proc/cmdline").match(/(?:^|\s)luotest\.boot=(\d+)/);
  return match ? Number(match[1]) : 1;
}

/** Fails with `message` unless `condition` holds. */
export function ensure(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

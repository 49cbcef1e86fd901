/**
 * `liveupdate-agent wait`: block until the newest attempt has ended, or the
 * kernel's live-update state is normal, so scripts and fleet tools can gate on
 * the agent without parsing its output.
 *
 * @module
 */

import { parseDuration } from "../config/mod.ts";
import { UsageError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import { type LuoState, StateWaitTimeoutError, waitForState } from "../kernel/mod.ts";
import { AttemptStore, TERMINAL_STATUSES } from "../store/mod.ts";
import { type AttemptSummary, summarizeAttempt } from "./attempts_view.ts";
import type { Command, CommandContext } from "./command.ts";
import { openConfiguredKernel } from "./configured_kernel.ts";

/** Version of the `wait --json` document. */
export const WAIT_JSON_VERSION = 1;

/** The longest a timer can wait (setTimeout's limit, about 24.8 days): "infinity". */
const FOREVER = 2_147_483_647;

/** How often `--for=finished` looks at the records. */
const RECORD_POLL_MS = 250;

/** The `wait --json` document. */
export interface WaitReport {
  version: typeof WAIT_JSON_VERSION;
  for: "finished" | "normal";
  /** Whether the condition was reached (false: timed out). */
  reached: boolean;
  waited_ms: number;
  /** The kernel's last state seen (`--for=normal`). */
  state: LuoState | null;
  /** The newest attempt when the wait ended (`--for=finished`). */
  attempt: AttemptSummary | null;
  /** The exit code of the command. */
  exit_code: number;
  message: string;
}

/** Parses `--timeout` ("90s", "5min", "infinity"); milliseconds, capped at {@link FOREVER}. */
export function parseTimeout(text: string | undefined): number {
  if (text === undefined || text === "infinity") return FOREVER;
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw new UsageError(
      `Option '--timeout' is "${text}" but must be a duration such as "90s", "5min", "1h 30min" ` +
        'or "infinity".',
    );
  }
  return Math.min(ms, FOREVER);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The exit code an ended attempt stands for: 0 when it succeeded, its failure's otherwise. */
export function exitCodeOf(summary: AttemptSummary): number {
  if (summary.status === "succeeded") return ExitCode.Success;
  return summary.exit_code ? summary.exit_code : ExitCode.Failed;
}

async function waitFinished(
  context: CommandContext,
  timeoutMs: number,
): Promise<Omit<WaitReport, "version" | "for" | "waited_ms">> {
  const { config } = context.loaded;
  const { clock } = context.host;
  const store = new AttemptStore(context.host.fs, config.paths.state_dir, config.store.history);
  const deadline = clock.monotonic() + timeoutMs;
  let newest: AttemptSummary | null = null;
  for (;;) {
    const { records } = await store.list();
    newest = records[0] ? summarizeAttempt(records[0]) : null;
    if (newest && TERMINAL_STATUSES.has(newest.status)) {
      const code = exitCodeOf(newest);
      return {
        reached: true,
        state: null,
        attempt: newest,
        exit_code: code,
        message: `Attempt ${newest.id} ended: ${newest.status}` +
          (newest.message ? ` — ${newest.message}` : "."),
      };
    }
    const left = deadline - clock.monotonic();
    if (left <= 0) break;
    await sleep(Math.min(RECORD_POLL_MS, left));
  }
  return {
    reached: false,
    state: null,
    attempt: newest,
    exit_code: ExitCode.Timeout,
    message: newest
      ? `Timed out: attempt ${newest.id} is still "${newest.status}".`
      : "Timed out: no attempt was recorded.",
  };
}

async function waitNormal(
  context: CommandContext,
  timeoutMs: number,
): Promise<Omit<WaitReport, "version" | "for" | "waited_ms">> {
  const kernel = await openConfiguredKernel(context);
  const machine = kernel.stateMachine;
  if (!machine) {
    return {
      reached: true,
      state: null,
      attempt: null,
      exit_code: ExitCode.Success,
      message: `The ${kernel.backend} interface has no global state; there is nothing to wait for.`,
    };
  }
  try {
    const state = await waitForState(machine, ["normal"], { timeout: timeoutMs });
    return {
      reached: true,
      state,
      attempt: null,
      exit_code: ExitCode.Success,
      message: `The kernel's live-update state is "${state}".`,
    };
  } catch (error) {
    if (!(error instanceof StateWaitTimeoutError)) throw error;
    return {
      reached: false,
      state: error.last ?? null,
      attempt: null,
      exit_code: ExitCode.Timeout,
      message: `Timed out: the kernel's live-update state is still "${error.last ?? "unknown"}".`,
    };
  }
}

/** `liveupdate-agent wait --for=finished|normal [--timeout=DURATION]`. */
export const waitCommand: Command = {
  name: "wait",
  summary: "Wait until the newest attempt has ended, or the kernel's state is normal.",
  description: [
    "--for=finished  waits until the newest attempt has ended (an attempt that has not",
    "                started yet is waited for too). Exits 0 when it succeeded, otherwise",
    "                with its failure's exit code: 1 failed (or cancelled), 5 refused,",
    "                6 rolled back.",
    "--for=normal    waits until the kernel's live-update state is normal (poll(2) with",
    "                kernel.watch_interval as the bound). Exits 0; 4 when the kernel offers",
    "                no live update.",
    "Either exits 8 when --timeout runs out first (default: infinity). Changes nothing.",
  ].join("\n"),
  options: {
    for: { type: "string", value: "finished|normal", description: "What to wait for." },
    timeout: {
      type: "string",
      value: "DURATION",
      description: 'Give up after this long ("90s", "5min", "infinity"): exit 8.',
    },
    json: { type: "boolean", description: "Print the outcome as JSON (schema in the README)." },
  },
  async run(context, args) {
    const what = args.values.for;
    if (what !== "finished" && what !== "normal") {
      throw new UsageError(
        what === undefined
          ? "'liveupdate-agent wait' needs --for=finished or --for=normal."
          : `Option '--for' is "${what}" but must be one of finished, normal.`,
      );
    }
    const timeoutMs = parseTimeout(args.values.timeout as string | undefined);
    const started = context.host.clock.monotonic();
    const outcome = what === "finished"
      ? await waitFinished(context, timeoutMs)
      : await waitNormal(context, timeoutMs);
    const report: WaitReport = {
      version: WAIT_JSON_VERSION,
      for: what,
      ...outcome,
      waited_ms: Math.round(context.host.clock.monotonic() - started),
    };
    if (args.values.json) context.host.stdout.write(JSON.stringify(report, null, 2) + "\n");
    else if (report.exit_code === ExitCode.Success) context.log.info(report.message);
    else if (!report.reached) context.log.error(report.message);
    else context.log.warning(report.message);
    return report.exit_code as ExitCode;
  },
};

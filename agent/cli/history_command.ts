/**
 * `liveupdate-agent history`: the attempts the agent recorded, newest first, or
 * one attempt's whole record.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import { AttemptStore } from "../store/mod.ts";
import {
  type AttemptSummary,
  historyLine,
  renderAttempt,
  summarizeAttempt,
} from "./attempts_view.ts";
import type { Command } from "./command.ts";

/** Version of the `history --json` document. */
export const HISTORY_JSON_VERSION = 1;

/** The `history --json` document. */
export interface HistoryReport {
  version: typeof HISTORY_JSON_VERSION;
  /** Where the records are. */
  dir: string;
  /** How many ended attempts are kept (`store.history`). */
  keep: number;
  attempts: AttemptSummary[];
  /** Record files that cannot be used, and why. */
  unreadable: { path: string; problem: string }[];
}

/** `liveupdate-agent history [ID]`. */
export const historyCommand: Command = {
  name: "history",
  summary: "List the recorded update attempts, or show one attempt's record.",
  description: [
    "Without ID: every attempt the agent recorded (newest first; store.history are kept),",
    "with its result, kernels and duration, and record files that cannot be used. With an",
    "attempt ID (or 'latest'): the whole record — outcome, kernels, compatibility, devices,",
    "timings, and every journaled step with its result or error. --json prints the summary",
    "list, or the record itself (both schemas are in the README). Exits 1 when the ID is",
    "not recorded or its record cannot be used.",
  ].join("\n"),
  options: {
    json: { type: "boolean", description: "Print JSON (versioned schemas, see the README)." },
    limit: {
      type: "string",
      value: "N",
      description: "Show at most N attempts (default: all kept).",
    },
  },
  positionals: ["ID"],
  async run(context, args) {
    const { config } = context.loaded;
    const store = new AttemptStore(context.host.fs, config.paths.state_dir, config.store.history);
    const json = args.values.json === true;
    const { stdout } = context.host;
    const [id] = args.positionals;
    let limit = Infinity;
    if (typeof args.values.limit === "string") {
      limit = Number(args.values.limit);
      if (!Number.isInteger(limit) || limit < 1) {
        throw new UsageError(
          `Option '--limit' is "${args.values.limit}" but must be a whole number of at least 1.`,
        );
      }
    }
    const { records, unreadable } = await store.list();
    if (id !== undefined) {
      const record = id === "latest" ? records[0] : records.find((r) => r.id === id);
      if (!record) {
        const bad = unreadable.find((u) => u.path === store.pathOf(id));
        context.log.error(
          bad
            ? `Attempt record "${bad.path}" cannot be used: ${bad.problem}.`
            : id === "latest"
            ? `No attempt is recorded in "${store.dir}".`
            : `No attempt "${id}" is recorded in "${store.dir}"; 'liveupdate-agent history' ` +
              "lists them.",
        );
        return ExitCode.Failed;
      }
      stdout.write(
        json
          ? JSON.stringify(record, null, 2) + "\n"
          : renderAttempt(record, store.pathOf(record.id)),
      );
      return ExitCode.Success;
    }
    const report: HistoryReport = {
      version: HISTORY_JSON_VERSION,
      dir: store.dir,
      keep: config.store.history,
      attempts: records.slice(0, limit).map(summarizeAttempt),
      unreadable: unreadable.map(({ path, problem }) => ({ path, problem })),
    };
    if (json) {
      stdout.write(JSON.stringify(report, null, 2) + "\n");
      return ExitCode.Success;
    }
    const lines = [
      `${records.length ? "●" : "○"} ${records.length} attempt(s) recorded in ${store.dir} ` +
      `(ended ones kept: ${config.store.history})`,
    ];
    if (report.attempts.length) {
      lines.push("", ...report.attempts.map(historyLine));
      if (records.length > report.attempts.length) {
        lines.push(`(${records.length - report.attempts.length} older not shown)`);
      }
      lines.push("", "'liveupdate-agent history ID' shows one attempt's record.");
    }
    for (const bad of report.unreadable) {
      lines.push(`unusable record ${bad.path}: ${bad.problem} ('recover' sets it aside)`);
    }
    stdout.write(lines.join("\n") + "\n");
    return ExitCode.Success;
  },
};

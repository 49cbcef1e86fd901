/**
 * The rehearsal's progress display: sections, tasks that start and end, and notes
 * under them. On a terminal the running task is one live line with a spinner and
 * its elapsed time, redrawn in place, and finished tasks stay above it; otherwise
 * plain lines, one when a task starts and one when it ends.
 *
 * @module
 */

import type { Output } from "../host/mod.ts";

/** How a task ended. */
export type TaskOutcome = "done" | "failed" | "undone" | "skipped";

/** A running task. */
export interface Task {
  /** Replaces the text shown after the label while it runs. */
  detail(text: string): void;
  /** Ends the task (a second end is ignored). */
  end(outcome: TaskOutcome, detail?: string): void;
}

/** The display. */
export interface Progress {
  /** A heading: a blank line, then the title (and a dimmed note). */
  section(title: string, note?: string): void;
  /** Starts a task. */
  begin(label: string, detail?: string): Task;
  /** A line under the running task (what a service logged, what the kernel did). */
  note(text: string): void;
  /** Lines of free text. */
  print(text: string): void;
  /** Ends every running task as failed and stops redrawing. */
  close(): void;
}

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  output: Output;
  /** Milliseconds from an arbitrary origin (the host clock's `monotonic`). */
  now: () => number;
  /** Redraw in place with a spinner (a terminal). Default: `output.isTerminal()`. */
  live?: boolean;
  /** Colour (a terminal without NO_COLOR). */
  color?: boolean;
  /** The terminal's width, for the live lines. */
  columns?: () => number;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const MARK: Record<TaskOutcome, string> = { done: "✓", failed: "✗", undone: "↺", skipped: "-" };
const COLOR: Record<TaskOutcome, string> = {
  done: "\x1b[32m",
  failed: "\x1b[31m",
  undone: "\x1b[33m",
  skipped: "\x1b[2m",
};
const LABEL = 16;

/** Seconds with a precision that suits the size ("0.04s", "1.2s", "12s"). */
export function formatSeconds(ms: number): string {
  const s = ms / 1000;
  if (s < 1) return `${s.toFixed(2)}s`;
  if (s < 10) return `${s.toFixed(1)}s`;
  return `${Math.round(s)}s`;
}

interface Running {
  label: string;
  detail: string;
  started: number;
  ended: boolean;
}

/** Creates a progress display on `options.output`. */
export function createProgress(options: ProgressOptions): Progress {
  const { output, now } = options;
  const live = options.live ?? output.isTerminal();
  const color = options.color ?? false;
  const paint = (code: string, text: string) => (color ? `${code}${text}\x1b[0m` : text);
  const dim = (text: string) => paint("\x1b[2m", text);
  const running: Running[] = [];
  let drawn = 0;
  let frame = 0;
  let timer: ReturnType<typeof setInterval> | undefined;

  const clear = () => {
    if (drawn > 0) output.write(`\x1b[${drawn}A\x1b[0J`);
    drawn = 0;
  };
  const liveLine = (task: Running) => {
    const width = Math.max(20, (options.columns?.() ?? 100) - 1);
    const spin = SPINNER[frame % SPINNER.length]!;
    const text = `  ${spin} ${task.label.padEnd(LABEL)} ${task.detail}`;
    const time = ` ${formatSeconds(now() - task.started)}`;
    const room = width - time.length;
    const cut = text.length > room ? `${text.slice(0, Math.max(0, room - 1))}…` : text;
    return `${paint("\x1b[36m", cut)}${dim(time)}`;
  };
  const draw = () => {
    if (!live) return;
    clear();
    for (const task of running) output.write(`${liveLine(task)}\n`);
    drawn = running.length;
  };
  const emit = (text: string) => {
    clear();
    output.write(text.endsWith("\n") ? text : `${text}\n`);
    draw();
  };
  const ensureTimer = () => {
    if (!live || timer !== undefined) return;
    timer = setInterval(() => {
      frame++;
      draw();
    }, 100);
  };
  const stopTimer = () => {
    if (timer !== undefined && running.length === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  return {
    section(title, note) {
      emit(`\n${paint("\x1b[1m", title)}${note ? `  ${dim(note)}` : ""}`);
    },
    begin(label, detail = "") {
      const task: Running = { label, detail, started: now(), ended: false };
      running.push(task);
      if (live) {
        ensureTimer();
        draw();
      } else {
        emit(`  ▸ ${label}${detail ? `  ${detail}` : ""}`);
      }
      return {
        detail(text) {
          task.detail = text;
          draw();
        },
        end(outcome, detail) {
          if (task.ended) return;
          task.ended = true;
          running.splice(running.indexOf(task), 1);
          const text = detail ?? task.detail;
          const mark = paint(COLOR[outcome], MARK[outcome]);
          const time = outcome === "skipped" ? "" : `  ${dim(formatSeconds(now() - task.started))}`;
          emit(`  ${mark} ${task.label.padEnd(LABEL)}${text ? ` ${text}` : ""}${time}`);
          stopTimer();
        },
      };
    },
    note(text) {
      emit(`      ${dim("│")} ${text}`);
    },
    print(text) {
      emit(text);
    },
    close() {
      for (const task of [...running]) {
        task.ended = true;
        running.splice(running.indexOf(task), 1);
        emit(`  ${paint(COLOR.failed, MARK.failed)} ${task.label.padEnd(LABEL)} interrupted`);
      }
      stopTimer();
      clear();
    },
  };
}

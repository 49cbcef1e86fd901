/**
 * Facts about the running kernel and this boot, read from procfs below
 * `paths.proc` through the {@link KernelFs} (so the agent needs no Deno
 * permission for /proc, and tests and the rehearsal can point `paths.proc` at a
 * prepared directory):
 *
 * - `cmdline`: the running kernel's command line (`<proc>/cmdline`);
 * - `sys/kernel/osrelease`: its release, as `uname -r` prints it;
 * - `uptime`: seconds since boot;
 * - `sys/kernel/random/boot_id`: this boot's id (changes with every boot and kexec);
 * - `sys/kernel/hostname`: the host name.
 *
 * Each call reads the file afresh and throws {@link ProcFileError} naming the file
 * when it cannot be read or holds something procfs would not.
 *
 * @module
 */

import { AgentError } from "../errors.ts";
import { failed, type KernelFs } from "./kernel_fs.ts";

/** A procfs file could not be read, or held something unexpected. */
export class ProcFileError extends AgentError {
  override name = "ProcFileError";
  readonly file: string;
  /** The errno of a failed read ("ENOENT"); undefined when the contents were wrong. */
  readonly errno: string | undefined;

  constructor(message: string, file: string, errno?: string) {
    super(message);
    this.file = file;
    this.errno = errno;
  }
}

/** What the agent reads from procfs. */
export interface ProcFacts {
  /** The running kernel's command line, without the trailing newline. */
  cmdline(): string;
  /** The running kernel's release ("6.14.0-1-amd64"), as `uname -r` prints it. */
  osRelease(): string;
  /** Seconds since boot (fractional). */
  uptimeSeconds(): number;
  /** This boot's id, a lowercase UUID; another boot (or kexec) has another. */
  bootId(): string;
  /** The host name (the kernel's, of this UTS namespace). */
  hostname(): string;
}

/** procfs files are small; anything larger is not procfs. */
const LIMIT = 64 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UPTIME = /^(\d+(?:\.\d+)?) \d+(?:\.\d+)?$/;
// A single line of printable text without NUL (release, host name).
const LINE = /^[\x21-\x7e][\x20-\x7e]*$/;

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

/** The procfs facts below `proc` (`paths.proc`), read through `fs`. */
export function procFacts(fs: KernelFs, proc: string): ProcFacts {
  const decoder = new TextDecoder();
  const read = (relative: string): { file: string; text: string } => {
    const file = `${proc}/${relative}`;
    const bytes = fs.readFile(file, LIMIT);
    if (failed(bytes)) {
      throw new ProcFileError(
        `Cannot read ${file} (${bytes.errno}): paths.proc ("${proc}") must be where procfs ` +
          "is mounted; check the setting.",
        file,
        bytes.errno,
      );
    }
    const text = decoder.decode(bytes);
    return { file, text: text.endsWith("\n") ? text.slice(0, -1) : text };
  };
  const unexpected = (file: string, text: string, expected: string) =>
    new ProcFileError(
      `${file} holds ${quote(text)}, not ${expected}: paths.proc ("${proc}") must be where ` +
        "procfs is mounted.",
      file,
    );
  const line = (relative: string, what: string) => {
    const { file, text } = read(relative);
    if (!LINE.test(text)) throw unexpected(file, text, what);
    return text;
  };
  return {
    cmdline() {
      const { file, text } = read("cmdline");
      if (text.includes("\0") || text.includes("\n")) {
        throw unexpected(file, text, "a kernel command line (one line)");
      }
      return text;
    },
    osRelease: () => line("sys/kernel/osrelease", "a kernel release"),
    uptimeSeconds() {
      const { file, text } = read("uptime");
      const match = UPTIME.exec(text);
      if (!match) throw unexpected(file, text, 'two numbers of seconds ("12.34 56.78")');
      return Number(match[1]);
    },
    bootId() {
      const { file, text } = read("sys/kernel/random/boot_id");
      if (!UUID.test(text)) throw unexpected(file, text, "a boot id (a lowercase UUID)");
      return text;
    },
    hostname: () => line("sys/kernel/hostname", "a host name"),
  };
}

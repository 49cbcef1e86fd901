/**
 * Boots the mainline test kernel under qemu (software emulation, single-threaded
 * TCG: multi-threaded TCG hit an int3 oops after kexec) and parses its serial
 * console. qemu is this process's direct child, and the timeout kills qemu itself
 * (never a shell around it). A guest panic ends qemu at once (`panic=-1` and
 * `-no-reboot`); so does the guest's poweroff.
 *
 * Guest programs report with lines `@@LUO {json}` (see guest/report.ts); `init`
 * adds `@@LUO-INIT …` and `@@LUO-EXIT <code>`.
 *
 * @module
 */

import { dirname } from "node:path";

/** One `@@LUO {json}` record from the guest. */
export type GuestRecord = Record<string, unknown> & { type: string };

/** Options of {@link runGuest}. */
export interface GuestOptions {
  kernel: string;
  /** The initramfs; none boots straight from the first disk (append root=/dev/vda). */
  initrd?: string;
  /** Extra kernel command line words (the runner adds console, kho, liveupdate, panic). */
  append: string[];
  /** Guest memory in MiB (default 3072; KHO's scratch areas take 1 GiB of it). */
  memory?: number;
  /** A raw disk image attached as /dev/vda (the guest's state directory). */
  stateDisk?: string;
  /**
   * Raw disk images attached in order (/dev/vda, /dev/vdb, …) after `stateDisk`;
   * `snapshot` ones take writes into a throw-away overlay that lives as long as
   * qemu (so across kexecs) and leaves the image untouched.
   */
  drives?: { file: string; snapshot?: boolean }[];
  /** The command line words before `append`; defaults to {@link BASE_CMDLINE}. */
  base?: string[];
  /** Kills qemu after this many ms. */
  timeout: number;
  /** Where the full serial log is written. */
  log: string;
}

/** What a guest run produced. */
export interface GuestRun {
  records: GuestRecord[];
  /** Every `@@LUO-EXIT` code, one per boot that ran its program to the end. */
  exits: number[];
  /** Host time (ms since qemu started) of each boot's `@@LUO-INIT` line: /init running. */
  inits: number[];
  /** Serial lines, for diagnosis. */
  lines: string[];
  /** qemu's exit status. */
  code: number;
  timedOut: boolean;
  /** Wall time of the whole run, in ms. */
  duration: number;
  /** Whether the kernel panicked. */
  panicked: boolean;
}

/** The kernel command line every guest boots with. */
export const BASE_CMDLINE = [
  "console=ttyS0",
  "kho=on",
  "liveupdate=on",
  "panic=-1",
  "loglevel=4",
  "retain_initrd",
  // Fixed KHO scratch sizes (lowmem, global, per node). The default (twice the
  // memory the kernel reserves at boot, initrd included) made the per-node
  // reservation fail now and then with this ~120 MB initramfs, which silently
  // turns KHO and live update off; and the next kernel with its initrd must fit
  // into the scratch areas.
  "kho_scratch=256M,512M,256M",
  "rdinit=/init",
];

/** Boots a guest and waits until qemu exits or the timeout kills it. Needs --allow-run. */
export async function runGuest(options: GuestOptions): Promise<GuestRun> {
  const args = [
    "-machine",
    "q35",
    "-accel",
    "tcg,thread=single",
    "-cpu",
    "max",
    "-smp",
    "1",
    "-m",
    String(options.memory ?? 3072),
    "-nodefaults",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-no-reboot",
    "-kernel",
    options.kernel,
    ...(options.initrd ? ["-initrd", options.initrd] : []),
    "-append",
    [...(options.base ?? BASE_CMDLINE), ...options.append].join(" "),
  ];
  if (options.stateDisk) {
    args.push("-drive", `file=${options.stateDisk},format=raw,if=virtio`);
  }
  for (const drive of options.drives ?? []) {
    args.push(
      "-drive",
      `file=${drive.file},format=raw,if=virtio${drive.snapshot ? ",snapshot=on" : ""}`,
    );
  }
  const started = performance.now();
  const child = new Deno.Command("qemu-system-x86_64", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, options.timeout);
  const lines: string[] = [];
  const records: GuestRecord[] = [];
  const exits: number[] = [];
  const inits: number[] = [];
  let panicked = false;
  await Deno.mkdir(dirname(options.log), { recursive: true });
  const log = await Deno.open(options.log, { write: true, create: true, truncate: true });
  const encoder = new TextEncoder();
  const stderrText = new Response(child.stderr).text();
  try {
    let pending = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      await log.write(chunk);
      pending += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline).replace(/\r$/, "");
        pending = pending.slice(newline + 1);
        lines.push(line);
        const at = line.indexOf("@@LUO");
        if (line.includes("Kernel panic")) panicked = true;
        if (at < 0) continue;
        const tail = line.slice(at);
        const now = performance.now() - started;
        if (tail.startsWith("@@LUO-INIT up")) inits.push(now);
        if (tail.startsWith("@@LUO-EXIT ")) {
          exits.push(Number.parseInt(tail.slice("@@LUO-EXIT ".length), 10));
        } else if (tail.startsWith("@@LUO {")) {
          try {
            const record = JSON.parse(tail.slice("@@LUO ".length)) as GuestRecord;
            record.hostMs = now;
            records.push(record);
          } catch {
            records.push({ type: "garbled", line: tail });
          }
        }
      }
    }
  } finally {
    clearTimeout(timer);
    const stderr = await stderrText;
    if (stderr) await log.write(encoder.encode(`\n--- qemu stderr ---\n${stderr}`));
    log.close();
  }
  const status = await child.status;
  return {
    records,
    exits,
    inits,
    lines,
    code: status.code,
    timedOut,
    duration: performance.now() - started,
    panicked,
  };
}

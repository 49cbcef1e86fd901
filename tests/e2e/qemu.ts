/**
 * One guest under qemu (software emulation): the disk image booted with
 * `snapshot=on` (the image is shared and never written), the kernel and initrd
 * from the guest root, a serial console and two virtio-serial ports (records,
 * journal) written to files the host reads. Timeouts kill qemu itself.
 *
 * @module
 */

import { canRun } from "./_exec.ts";
import { ChannelError, type GuestEvent, LineReader, parseEvent } from "./channel.ts";
import type { DiskImage } from "./disk.ts";

/** The qemu binary. */
export const QEMU = "qemu-system-x86_64";

/** The kernel command line every boot starts from. */
export const BASE_CMDLINE: readonly string[] = [
  "root=/dev/vda",
  "rw",
  "console=ttyS0",
  // The RFC v1 interface exists only with both on (the stand-in checks them too).
  "liveupdate=1",
  "kho=on",
];

/** Console lines after which the guest will not get anywhere. */
const FATAL_CONSOLE = /Kernel panic - not syncing.*|Dropping to a shell!.*/;

/** Options of {@link Vm.start}. */
export interface VmOptions {
  image: DiskImage;
  /** A directory for this VM's console, record and journal files. */
  dir: string;
  /** Kernel arguments after {@link BASE_CMDLINE}. */
  append?: readonly string[];
  /** A tar archive the guest sees as /dev/disk/by-id/virtio-luo-e2e-payload. */
  payload?: string;
  memoryMiB?: number;
}

/** The VM stopped, panicked or took too long. */
export class VmError extends Error {
  override name = "VmError";
}

async function readFrom(path: string, offset: number): Promise<Uint8Array> {
  try {
    using file = await Deno.open(path);
    await file.seek(offset, Deno.SeekMode.Start);
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    for (;;) {
      const n = await file.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return new Uint8Array();
    throw error;
  }
}

/** A running (or finished) guest. */
export class Vm implements AsyncDisposable {
  readonly events: GuestEvent[] = [];
  readonly consolePath: string;
  readonly eventsPath: string;
  readonly journalPath: string;
  readonly started = performance.now();
  #child: Deno.ChildProcess;
  #exit?: Deno.CommandStatus;
  #eventsOffset = 0;
  #consoleOffset = 0;
  #consoleTail = "";
  #fatal?: string;
  #cursor = 0;
  #reader = new LineReader();
  #decoder = new TextDecoder();
  #consoleDecoder = new TextDecoder();
  #stderrText = "";
  #stderrDone: Promise<void>;

  private constructor(child: Deno.ChildProcess, dir: string) {
    this.#child = child;
    this.consolePath = `${dir}/console.log`;
    this.eventsPath = `${dir}/events.log`;
    this.journalPath = `${dir}/journal.log`;
    child.status.then((status) => this.#exit = status);
    this.#stderrDone = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.#stderrText = (this.#stderrText + decoder.decode(chunk, { stream: true })).slice(
          -4000,
        );
      }
    })().catch(() => {});
  }

  /** The qemu command line for `options`. */
  static args(options: VmOptions): string[] {
    const { image, dir } = options;
    // A small translation cache: with qemu's default (1 GiB) every boot after a
    // kexec or reset was about 2x slower (measured: kexec to boot complete
    // 57-80 s against 35-38 s with 128 MiB).
    const accel = Deno.env.get("LIVEUPDATE_VM_ACCEL") ?? "tcg,thread=single,tb-size=128";
    const args = [
      "-name",
      "liveupdate-vm-e2e",
      "-machine",
      "q35",
      "-accel",
      accel,
      // qemu64: "max" made every boot after a kexec 2-3x slower under TCG (measured).
      "-cpu",
      Deno.env.get("LIVEUPDATE_VM_CPU") ?? "qemu64",
      "-smp",
      "1",
      "-m",
      String(options.memoryMiB ?? 1024),
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-monitor",
      "none",
      "-nic",
      "none",
      "-kernel",
      image.vmlinuz,
      "-initrd",
      image.initrd,
      "-append",
      [...BASE_CMDLINE, ...(options.append ?? [])].join(" "),
      // Explicit devices, root first: the guest names them vda, vdb in this order.
      "-drive",
      `file=${image.path},format=raw,if=none,id=root,snapshot=on,cache=unsafe`,
      "-device",
      "virtio-blk-pci,drive=root,serial=luo-e2e-root",
      "-serial",
      `file:${dir}/console.log`,
      "-device",
      "virtio-serial-pci,id=ports",
      "-chardev",
      `file,id=events,path=${dir}/events.log`,
      "-device",
      "virtserialport,bus=ports.0,chardev=events,name=org.liveupdate.e2e.events",
      "-chardev",
      `file,id=journal,path=${dir}/journal.log`,
      "-device",
      "virtserialport,bus=ports.0,chardev=journal,name=org.liveupdate.e2e.journal",
    ];
    if (options.payload) {
      args.push(
        "-drive",
        `file=${options.payload},format=raw,if=none,id=payload,readonly=on`,
        "-device",
        "virtio-blk-pci,drive=payload,serial=luo-e2e-payload",
      );
    }
    return args;
  }

  /**
   * Starts qemu. It gets SIGKILL when this process dies (setpriv --pdeathsig),
   * so an interrupted test leaves no VM behind. Needs --allow-run.
   */
  static async start(options: VmOptions): Promise<Vm> {
    const args = Vm.args(options);
    const usePdeathsig = await canRun("setpriv", ["--help"]);
    await Deno.writeTextFile(`${options.dir}/qemu.args`, [QEMU, ...args].join("\n") + "\n");
    const child = new Deno.Command(usePdeathsig ? "setpriv" : QEMU, {
      args: usePdeathsig ? ["--pdeathsig", "KILL", "--", QEMU, ...args] : args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    return new Vm(child, options.dir);
  }

  /** Milliseconds since the VM started. */
  elapsed(): number {
    return performance.now() - this.started;
  }

  /** Whether qemu has exited. */
  get exited(): boolean {
    return this.#exit !== undefined;
  }

  /** Reads what arrived since the last call; new records get the current time. */
  async poll(): Promise<GuestEvent[]> {
    const fresh: GuestEvent[] = [];
    const bytes = await readFrom(this.eventsPath, this.#eventsOffset);
    this.#eventsOffset += bytes.length;
    const now = this.elapsed();
    for (const line of this.#reader.push(this.#decoder.decode(bytes, { stream: true }))) {
      try {
        fresh.push(parseEvent(line, now));
      } catch (error) {
        if (!(error instanceof ChannelError)) throw error;
        fresh.push({
          kind: "check",
          boot: 0,
          name: "channel",
          value: `fail ${error.message}`,
          at: now,
        });
      }
    }
    this.events.push(...fresh);
    const consoleBytes = await readFrom(this.consolePath, this.#consoleOffset);
    this.#consoleOffset += consoleBytes.length;
    const text = this.#consoleDecoder.decode(consoleBytes, { stream: true });
    const scan = this.#consoleTail + text;
    const panic = FATAL_CONSOLE.exec(scan);
    if (panic && !this.#fatal) this.#fatal = panic[0];
    this.#consoleTail = scan.slice(-200);
    return fresh;
  }

  /**
   * Returns the next record not returned before, waiting up to `timeoutMs` for
   * it; fails early when qemu exits or the guest cannot get anywhere (a kernel
   * panic, the initramfs shell).
   */
  async next(what: string, timeoutMs: number): Promise<GuestEvent> {
    const deadline = this.elapsed() + timeoutMs;
    for (;; await new Promise((resolve) => setTimeout(resolve, 100))) {
      if (this.#cursor >= this.events.length) await this.poll();
      if (this.#cursor < this.events.length) return this.events[this.#cursor++]!;
      if (this.#fatal) throw new VmError(`The guest failed waiting for ${what}: ${this.#fatal}`);
      if (this.#exit) {
        throw new VmError(
          `qemu exited (code ${this.#exit.code}) waiting for ${what}${await this.#stderr()}`,
        );
      }
      if (this.elapsed() > deadline) {
        throw new VmError(`Timed out after ${(timeoutMs / 1000).toFixed(0)}s waiting for ${what}`);
      }
    }
  }

  /** Skips records until one satisfies `predicate`, each within `timeoutMs` of the last. */
  async waitFor(
    what: string,
    predicate: (event: GuestEvent) => boolean,
    timeoutMs: number,
  ): Promise<GuestEvent> {
    for (;;) {
      const event = await this.next(what, timeoutMs);
      if (predicate(event)) return event;
    }
  }

  /** Waits up to `timeoutMs` for qemu to exit by itself; false if it did not. */
  async waitForExit(timeoutMs: number): Promise<boolean> {
    const deadline = this.elapsed() + timeoutMs;
    while (!this.#exit && this.elapsed() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await this.poll();
    return this.#exit !== undefined;
  }

  async #stderr(): Promise<string> {
    await this.#stderrDone;
    return this.#stderrText.trim() ? `: ${this.#stderrText.trim()}` : "";
  }

  /** Kills qemu (if it still runs) and waits for it. */
  async stop(): Promise<void> {
    if (!this.#exit) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // It exited meanwhile.
      }
    }
    await this.#child.status;
    await this.#stderrDone;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Why this host cannot run the VM tier, or undefined when it can: qemu must
 * start a machine under software emulation (the tier never uses KVM), and the
 * image build needs root. Needs --allow-run.
 */
export async function qemuUnusable(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "the VM tier builds its image with debootstrap and needs root";
  try {
    const child = new Deno.Command(QEMU, {
      args: [
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-S",
        "-monitor",
        "stdio",
      ],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("quit\n"));
    await writer.close();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const result = await child.output();
    clearTimeout(timer);
    if (result.code !== 0) {
      return `${QEMU} cannot start a machine (exit ${result.code}): ${
        new TextDecoder().decode(result.stderr).trim()
      }`;
    }
    return undefined;
  } catch (error) {
    return `${QEMU} cannot be run: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * Builds the initramfs of the mainline test guest: busybox (static), the deno
 * binary this machine runs with its shared libraries, the repository's agent and
 * tests/mainline sources, a DENO_DIR already holding every npm package and
 * module the guest programs import (the guest has no network), and the kernel
 * image the guest kexecs into. The archive is an uncompressed newc cpio: the
 * deno binary dominates its size, and unpacking it is faster than inflating it
 * under software emulation.
 *
 * Usage: deno run -A tests/mainline/initramfs.ts KERNEL_DIR OUT.cpio
 *
 * @module
 */

import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { abiMetadataText } from "./kernel.ts";

/** The repository root. */
export const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** Guest programs (repository-relative) whose imports are cached into the guest. */
export const GUEST_PROGRAMS = [
  "tests/mainline/guest/abi_checks.ts",
  "tests/mainline/guest/broker_checks.ts",
  "examples/memfd_client.ts",
  "agent/main.ts",
];

/** Repository folders and files copied into the guest, below /repo. */
export const SOURCES = ["agent", "examples", "tests/mainline", "units", "deno.json", "deno.lock"];

/** Runs a command to its end; throws with its stderr when it fails. */
export async function run(
  command: string,
  args: string[],
  options: Deno.CommandOptions = {},
): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
    ...options,
  }).output();
  const text = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed (${output.code}): ${text.decode(output.stderr)}`,
    );
  }
  return text.decode(output.stdout);
}

/** Copies a file, creating its folder. */
export async function copyFile(from: string, to: string): Promise<void> {
  await Deno.mkdir(dirname(to), { recursive: true });
  await Deno.copyFile(from, to);
}

/** Copies a folder (without .build/ and node_modules/) or a file. */
export async function copyTree(from: string, to: string): Promise<void> {
  const info = await Deno.stat(from);
  if (info.isFile) return copyFile(from, to);
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.name === ".build" || entry.name === "node_modules") continue;
    await copyTree(join(from, entry.name), join(to, entry.name));
  }
}

/** The shared libraries `binary` loads, as absolute paths (from ldd). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const output = await run("ldd", [binary]);
  const libraries: string[] = [];
  for (const line of output.split("\n")) {
    const match = line.match(/(\/\S+) \(0x/);
    if (match?.[1]) libraries.push(match[1]);
  }
  return libraries;
}

/**
 * Copies the repository's sources to `repo` and fills `denoDir` with every
 * module and npm package `programs` import (the guests have no network).
 */
export async function stageRepository(
  repo: string,
  denoDir: string,
  programs: readonly string[],
): Promise<void> {
  for (const source of SOURCES) {
    await copyTree(join(REPO, source), join(repo, source));
  }
  await run(Deno.execPath(), ["cache", ...programs], {
    cwd: repo,
    env: { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1" },
  });
}

/** Options of {@link buildInitramfs}. */
export interface InitramfsOptions {
  /** The kernel cache directory (holds bzImage), from build_kernel.sh. */
  kernelDir: string;
  /** Where to write the cpio archive. */
  output: string;
}

/**
 * Builds the guest initramfs at `options.output`. Needs read access to the
 * repository, /usr/local/bin/deno and busybox, write access to a temp dir, and
 * `cpio` and `ldd` on the host.
 */
export async function buildInitramfs(options: InitramfsOptions): Promise<void> {
  const stage = await Deno.makeTempDir({ prefix: "liveupdate-mainline-initramfs-" });
  try {
    for (const dir of ["bin", "usr/bin", "proc", "sys", "dev", "tmp", "run", "root", "boot"]) {
      await Deno.mkdir(join(stage, dir), { recursive: true });
    }
    await copyFile("/bin/busybox", join(stage, "bin/busybox"));
    const deno = await Deno.realPath(Deno.execPath());
    await copyFile(deno, join(stage, "usr/bin/deno"));
    for (const library of await sharedLibraries(deno)) {
      await copyFile(await Deno.realPath(library), join(stage, library));
    }
    // Deno FFI opens libc by its soname.
    const libc = "/lib/x86_64-linux-gnu/libc.so.6";
    await copyFile(await Deno.realPath(libc), join(stage, libc));
    await copyFile(join(options.kernelDir, "bzImage"), join(stage, "boot/bzImage"));
    // The kernel's handover metadata where the agent looks for it.
    const release = (await Deno.readTextFile(join(options.kernelDir, "kernel-release"))).trim();
    await Deno.mkdir(join(stage, "usr/lib/modules", release), { recursive: true });
    await Deno.writeTextFile(
      join(stage, "usr/lib/modules", release, "liveupdate-abi"),
      await abiMetadataText({ abiMetadata: join(options.kernelDir, "liveupdate-abi") }),
    );
    await copyFile(join(REPO, "tests/mainline/guest/init.sh"), join(stage, "init"));
    await Deno.chmod(join(stage, "init"), 0o755);
    await stageRepository(join(stage, "repo"), join(stage, "deno-dir"), GUEST_PROGRAMS);
    await Deno.mkdir(join(stage, "etc"), { recursive: true });
    await Deno.writeTextFile(join(stage, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    // The agent's configuration: the target is this same kernel (status reports its
    // compatibility from /usr/lib/modules/<release>/liveupdate-abi).
    await Deno.mkdir(join(stage, "etc/liveupdate/config.d"), { recursive: true });
    await Deno.writeTextFile(
      join(stage, "etc/liveupdate/config.d/50-kernel-tier.toml"),
      '[target]\nkernel = "/boot/bzImage"\n',
    );
    // find | cpio, without a shell.
    const files: string[] = [];
    const walk = async (dir: string) => {
      for await (const entry of Deno.readDir(dir)) {
        const path = join(dir, entry.name);
        files.push(relative(stage, path));
        if (entry.isDirectory) await walk(path);
      }
    };
    await walk(stage);
    const cpio = new Deno.Command("cpio", {
      args: ["--quiet", "-o", "-H", "newc", "--owner=0:0"],
      cwd: stage,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await Deno.mkdir(dirname(options.output), { recursive: true });
    const out = await Deno.open(options.output, { write: true, create: true, truncate: true });
    // Read cpio's output while feeding it the names, or both sides block.
    const copied = cpio.stdout.pipeTo(out.writable);
    const stderrText = new Response(cpio.stderr).text();
    const writer = cpio.stdin.getWriter();
    await writer.write(new TextEncoder().encode(files.join("\n") + "\n"));
    await writer.close();
    await copied;
    const [status, stderr] = await Promise.all([cpio.status, stderrText]);
    if (!status.success) throw new Error(`cpio failed: ${stderr}`);
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

if (import.meta.main) {
  const [kernelDir, output] = Deno.args;
  if (!kernelDir || !output) {
    // deno-lint-ignore no-console
    console.error("usage: initramfs.ts KERNEL_DIR OUT.cpio");
    Deno.exit(2);
  }
  await buildInitramfs({ kernelDir, output });
}

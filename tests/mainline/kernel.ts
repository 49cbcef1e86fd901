/**
 * The test kernel for the host-side tests: runs tests/mainline/build_kernel.sh
 * (instant when cached; the tier's prepare step built it) and returns its cache
 * directory.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./build_kernel.sh", import.meta.url));

/** The built kernel: its cache directory and the files in it. */
export interface TestKernel {
  dir: string;
  bzImage: string;
  /** The kernel source's include/uapi/linux/liveupdate.h. */
  uapiHeader: string;
  /** The handover compatible strings (the agent's liveupdate-abi metadata format). */
  abiMetadata: string;
  release: string;
}

let cached: Promise<TestKernel> | undefined;

const FIRST_FORMAT: Readonly<Record<string, string>> = {
  kho: "KHO_COMPATIBLE",
  luo: "LUO_COMPATIBLE",
  "file-handler": "LUO_FILE_HANDLERS",
};

/**
 * The kernel's liveupdate-abi metadata in the agent's format, as the guests
 * install it below /usr/lib/modules/<release>/. Cache entries from before that
 * format hold "kho=…" lines; they are translated.
 */
export async function abiMetadataText(kernel: Pick<TestKernel, "abiMetadata">): Promise<string> {
  const text = await Deno.readTextFile(kernel.abiMetadata);
  return text.split("\n").map((line) => {
    const match = /^([a-z-]+)=(.*)$/.exec(line);
    return match && FIRST_FORMAT[match[1]!] ? `${FIRST_FORMAT[match[1]!]}=${match[2]}` : line;
  }).join("\n");
}

/** Builds (or finds) the test kernel. Needs --allow-run, --allow-read. */
export function testKernel(): Promise<TestKernel> {
  return cached ??= (async () => {
    const output = await new Deno.Command("bash", {
      args: [SCRIPT],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout).trim().split("\n");
    const dir = stdout[stdout.length - 1];
    if (!output.success || !dir) {
      throw new Error(
        `build_kernel.sh failed (${output.code}): ${new TextDecoder().decode(output.stderr)}`,
      );
    }
    return {
      dir,
      bzImage: `${dir}/bzImage`,
      uapiHeader: `${dir}/liveupdate.h`,
      abiMetadata: `${dir}/liveupdate-abi`,
      release: (await Deno.readTextFile(`${dir}/kernel-release`)).trim(),
    };
  })();
}

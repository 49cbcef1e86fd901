/**
 * Crash-safe file writes: write a temporary file beside the target, fsync it,
 * rename it over the target, fsync the directory. A reader sees the old content or
 * the new, never a mix; a crash or a full disk leaves the old file intact.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import { fileErrorReason, StoreError } from "./store_error.ts";

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Permission bits of the new file (default 0600). */
  mode?: number;
}

function split(path: string): [string, string] {
  const slash = path.lastIndexOf("/");
  return [slash <= 0 ? "/" : path.slice(0, slash), path.slice(slash + 1)];
}

/** Fsyncs a directory so a rename in it is durable. Needs read permission on it. */
export async function syncDirectory(fs: FileSystem, dir: string): Promise<void> {
  using handle = await fs.open(dir, { read: true });
  await handle.sync();
}

/**
 * Replaces `path` with `data` atomically and durably. Throws {@link StoreError}
 * naming the file and the reason (disk full, permission, …); on failure the old
 * file is untouched and no temporary file is left. Needs read and write
 * permission on the directory.
 */
export async function writeFileAtomic(
  fs: FileSystem,
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const [dir, base] = split(path);
  const temp = `${dir}/.${base}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    {
      using file = await fs.open(temp, {
        write: true,
        createNew: true,
        mode: options.mode ?? 0o600,
      });
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.sync();
    }
    // The mode exactly, whatever the umask (the units' UMask=0077 would make a 0644
    // metrics file unreadable for node_exporter).
    await fs.chmod(temp, options.mode ?? 0o600);
    await fs.rename(temp, path);
    await syncDirectory(fs, dir);
  } catch (error) {
    await fs.remove(temp).catch(() => {});
    throw new StoreError(
      `Cannot write "${path}": ${fileErrorReason(error)}. The previous content is unchanged; ` +
        `fix the cause (free space, permissions on "${dir}") and run the command again.`,
      path,
      { cause: error },
    );
  }
}

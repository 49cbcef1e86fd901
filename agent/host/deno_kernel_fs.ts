/**
 * {@link KernelFs} over Deno's synchronous file API, for unit tests on ordinary
 * directories (plain sysfs trees on tmpfs, fixtures): it answers exactly like
 * the libc implementation, and both are tested against the same files. Not for
 * production: Deno refuses every path under /sys, /proc and /dev without
 * `--allow-all`, so the agent always uses `libcKernelFs`. A Deno permission
 * refusal is thrown, not turned into an errno, so a test with the wrong
 * permissions fails loudly. Needs `--allow-read` (and `--allow-write` to write).
 *
 * @module
 */

import { denoIdentityFs } from "./file_identity.ts";
import { errnoName } from "./errno.ts";
import { isPlainRelative } from "./beneath.ts";
import { type DirEntry, type KernelFs, relativeBelow } from "./kernel_fs.ts";

/**
 * The errno name of an error Deno's file API threw: the number in its message
 * ("(os error 19)") when there is one, else its `code` ("EIO" when it has
 * neither). Rethrows Deno's own permission refusals.
 */
export function denoErrno(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) throw error;
  const message = (error as { message?: unknown } | null)?.message;
  const number = typeof message === "string" ? /\(os error (\d+)\)/.exec(message)?.[1] : undefined;
  if (number !== undefined) return errnoName(Number(number));
  if (error instanceof Deno.errors.NotFound) return "ENOENT";
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : "EIO";
}

/** The kernel's files through Deno's synchronous API (tests only). */
export const denoKernelFs: KernelFs = {
  kind(path) {
    try {
      const info = Deno.lstatSync(path);
      return info.isDirectory ? "directory" : info.isSymlink ? "symlink" : "file";
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      return "missing";
    }
  },
  stat(path) {
    try {
      const info = Deno.statSync(path);
      return {
        type: info.isFile
          ? "file"
          : info.isDirectory
          ? "directory"
          : info.isCharDevice
          ? "char-device"
          : "other",
        size: info.size,
      };
    } catch (error) {
      return { errno: denoErrno(error) };
    }
  },
  readDir(path, limit = Infinity) {
    try {
      const entries: DirEntry[] = [];
      for (const entry of Deno.readDirSync(path)) {
        if (entries.length >= limit) return { errno: "E2BIG" };
        entries.push({ name: entry.name, isFile: entry.isFile, isDirectory: entry.isDirectory });
      }
      return entries;
    } catch (error) {
      return { errno: denoErrno(error) };
    }
  },
  read(path, buffer, options = {}) {
    let file: Deno.FsFile;
    try {
      if (options.noFollow && Deno.lstatSync(path).isSymlink) return { errno: "ELOOP" };
      file = Deno.openSync(path, { read: true });
    } catch (error) {
      return { errno: denoErrno(error) };
    }
    try {
      return file.readSync(buffer) ?? 0;
    } catch (error) {
      return { errno: denoErrno(error) };
    } finally {
      file.close();
    }
  },
  readFile(path, limit) {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = Deno.readFileSync(path);
    } catch (error) {
      return { errno: denoErrno(error) };
    }
    return bytes.length > limit ? { errno: "EFBIG" } : bytes;
  },
  readLink(path) {
    try {
      return Deno.readLinkSync(path);
    } catch (error) {
      return { errno: denoErrno(error) };
    }
  },
  write(path, bytes, options = {}) {
    if (options.beneath !== undefined) {
      // The libc version's openat2 beneath, checked component by component (tests only).
      const relative = relativeBelow(path, options.beneath);
      if (relative === undefined || !isPlainRelative(relative)) return { errno: "EXDEV" };
      let prefix = options.beneath;
      for (const part of relative.split("/")) {
        prefix = `${prefix}/${part}`;
        try {
          if (Deno.lstatSync(prefix).isSymlink) return { errno: "ELOOP" };
        } catch (error) {
          return { errno: denoErrno(error) };
        }
      }
    }
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { write: true });
    } catch (error) {
      return { errno: denoErrno(error) };
    }
    try {
      return file.writeSync(bytes);
    } catch (error) {
      return { errno: denoErrno(error) };
    } finally {
      file.close();
    }
  },
  identity: denoIdentityFs,
};

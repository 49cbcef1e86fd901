/**
 * An in-memory KernelFs for the kernel layer's unit tests: files with contents,
 * and per-file hooks that fail with an errno (throw {@link osError} from them).
 * Test-only.
 *
 * @module
 */

import type { FileStat, FsFailure, KernelFs } from "../host/mod.ts";

/** An error carrying errno `code`, for the hooks of a {@link FakeFile}. */
export function osError(code: string): Error {
  return Object.assign(new Error(`${code} (os error)`), { code });
}

/** One fake file. */
export interface FakeFile {
  contents: string | Uint8Array;
  /** Called with each write's text; may throw (see {@link osError}) or change contents. */
  onWrite?: (text: string) => void;
  /** Thrown by reads (its `code` is the errno the read fails with). */
  readError?: Error;
}

/** A fake file system and what was written to it. */
export interface FakeFs {
  fs: KernelFs;
  files: Map<string, FakeFile>;
  /** Every write, in order: [path, text]. */
  writes: [string, string][];
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

function failure(error: unknown): FsFailure {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string") throw error;
  return { errno: code };
}

/** A fake file system holding `files` (directories are implied by the paths). */
export function fakeFs(files: Record<string, FakeFile | string>): FakeFs {
  const map = new Map<string, FakeFile>(
    Object.entries(files).map(([path, file]) => [
      path,
      typeof file === "string" ? { contents: file } : file,
    ]),
  );
  const writes: [string, string][] = [];
  const isDir = (path: string) => [...map.keys()].some((file) => file.startsWith(`${path}/`));
  const bytes = (contents: string | Uint8Array) =>
    typeof contents === "string" ? encoder.encode(contents) : contents;
  /** The contents of file `path`, or the failure a read meets. */
  const contents = (path: string): Uint8Array | FsFailure => {
    const found = map.get(path);
    if (!found) return { errno: isDir(path) ? "EISDIR" : "ENOENT" };
    if (found.readError) return failure(found.readError);
    return bytes(found.contents);
  };
  const fs: KernelFs = {
    kind: (path) => map.has(path) ? "file" : isDir(path) ? "directory" : "missing",
    stat(path): FileStat | FsFailure {
      const found = map.get(path);
      if (found) {
        if (found.readError) return failure(found.readError);
        return { type: "file", size: bytes(found.contents).length };
      }
      return isDir(path) ? { type: "directory", size: 0 } : { errno: "ENOENT" };
    },
    readDir(path) {
      if (!isDir(path)) return { errno: map.has(path) ? "ENOTDIR" : "ENOENT" };
      const names = new Set<string>();
      for (const key of map.keys()) {
        if (key.startsWith(`${path}/`)) names.add(key.slice(path.length + 1).split("/")[0]!);
      }
      return [...names].map((name) => ({
        name,
        isFile: map.has(`${path}/${name}`),
        isDirectory: isDir(`${path}/${name}`),
      }));
    },
    read(path, buffer) {
      const data = contents(path);
      if (!(data instanceof Uint8Array)) return data;
      const count = Math.min(data.length, buffer.length);
      buffer.set(data.subarray(0, count));
      return count;
    },
    readFile(path, limit) {
      const data = contents(path);
      if (!(data instanceof Uint8Array)) return data;
      return data.length > limit ? { errno: "EFBIG" } : data.slice();
    },
    readLink: (path) => ({ errno: map.has(path) || isDir(path) ? "EINVAL" : "ENOENT" }),
    write(path, data) {
      const found = map.get(path);
      if (!found) return { errno: isDir(path) ? "EISDIR" : "ENOENT" };
      const text = decoder.decode(data);
      writes.push([path, text]);
      try {
        found.onWrite?.(text);
      } catch (error) {
        return failure(error);
      }
      return data.length;
    },
  };
  return { fs, files: map, writes };
}

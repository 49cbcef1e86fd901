/**
 * An in-memory FileSystem for the kernel layer's unit tests: files with contents,
 * and per-file hooks that throw errors shaped exactly like Deno's (a `code`
 * errno name; EINVAL as a TypeError, EACCES as PermissionDenied, ENOENT as
 * NotFound). Test-only.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";

/** An error as Deno 2.9 throws it for errno `code`. */
export function osError(code: string): Error {
  const text = `${code} (os error)`;
  const error = code === "EINVAL"
    ? new TypeError(text)
    : code === "EACCES"
    ? new Deno.errors.PermissionDenied(text)
    : code === "ENOENT"
    ? new Deno.errors.NotFound(text)
    : new Error(text);
  return Object.assign(error, { code });
}

/** One fake file. */
export interface FakeFile {
  contents: string | Uint8Array;
  /** Called with each write's text; may throw (see {@link osError}) or change contents. */
  onWrite?: (text: string) => void;
  /** Thrown by reads. */
  readError?: Error;
}

/** A fake file system and what was written to it. */
export interface FakeFs {
  fs: FileSystem;
  files: Map<string, FakeFile>;
  /** Every write, in order: [path, text]. */
  writes: [string, string][];
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

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
  const file = (path: string) => {
    const found = map.get(path);
    if (!found) {
      if (isDir(path)) throw Object.assign(new Deno.errors.IsADirectory(path), { code: "EISDIR" });
      throw osError("ENOENT");
    }
    if (found.readError) throw found.readError;
    return found;
  };
  const bytes = (contents: string | Uint8Array) =>
    typeof contents === "string" ? encoder.encode(contents) : contents;
  const fs = {
    readTextFile: (path: string) =>
      Promise.resolve().then(() => {
        const contents = file(path).contents;
        return typeof contents === "string" ? contents : decoder.decode(contents);
      }),
    readFile: (path: string) => Promise.resolve().then(() => bytes(file(path).contents)),
    stat: (path: string) =>
      Promise.resolve().then(() => {
        const found = map.get(path);
        if (found) {
          if (found.readError) throw found.readError;
          return {
            isFile: true,
            isDirectory: false,
            isSymlink: false,
            isCharDevice: false,
            size: bytes(found.contents).length,
          };
        }
        if (isDir(path)) {
          return {
            isFile: false,
            isDirectory: true,
            isSymlink: false,
            isCharDevice: false,
            size: 0,
          };
        }
        throw osError("ENOENT");
      }),
    readDir: async function* (path: string) {
      if (!isDir(path)) throw osError("ENOENT");
      const names = new Set<string>();
      for (const key of map.keys()) {
        if (key.startsWith(`${path}/`)) names.add(key.slice(path.length + 1).split("/")[0]!);
      }
      for (const name of names) {
        yield { name, isFile: map.has(`${path}/${name}`), isDirectory: isDir(`${path}/${name}`) };
      }
    },
    open: (path: string, options: Deno.OpenOptions = {}) =>
      Promise.resolve().then(() => {
        if (options.create || options.truncate || options.createNew) {
          throw new Error(`fake fs: ${path} opened with create/truncate`);
        }
        const found = map.get(path);
        if (!found) throw osError("ENOENT");
        let closed = false;
        return {
          write(data: Uint8Array) {
            return Promise.resolve().then(() => {
              if (closed) throw new Error("write after close");
              const text = decoder.decode(data);
              writes.push([path, text]);
              found.onWrite?.(text);
              return data.length;
            });
          },
          close() {
            closed = true;
          },
          [Symbol.dispose]() {
            closed = true;
          },
        };
      }),
  };
  return { fs: fs as unknown as FileSystem, files: map, writes };
}

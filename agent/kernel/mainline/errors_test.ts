import assert from "node:assert/strict";
import { ExitCode } from "../../exit_codes.ts";
import { KernelError } from "../kernel_error.ts";
import { LiveupdateError, liveupdateError } from "./errors.ts";

Deno.test("each errno says what it means for the request", () => {
  const cases: [Parameters<typeof liveupdateError>[1], string, RegExp][] = [
    [{ request: "open", file: "/dev/liveupdate" }, "EBUSY", /held by another process/],
    [{ request: "open", file: "/dev/liveupdate" }, "EIO", /could not take over the sessions/],
    [
      { request: "create-session", file: "/dev/liveupdate", session: "vm-1" },
      "EEXIST",
      /"vm-1" is taken/,
    ],
    [
      { request: "retrieve-session", file: "/dev/liveupdate", session: "vm-1" },
      "ENOENT",
      /kexec_load/,
    ],
    [
      { request: "retrieve-session", file: "/dev/liveupdate", session: "vm-1" },
      "EINVAL",
      /already retrieved/,
    ],
    [
      { request: "preserve-fd", file: "s", session: "vm-1", fd: 7, token: 1n },
      "ENOENT",
      /cannot be preserved \(fd 7\).*only memfds/,
    ],
    [
      { request: "preserve-fd", file: "s", session: "vm-1", fd: 7, token: 1n },
      "EBUSY",
      /already preserved/,
    ],
    [
      { request: "preserve-fd", file: "s", session: "vm-1", fd: 7, token: 1n },
      "EEXIST",
      /token 1 is already used/,
    ],
    [
      { request: "preserve-fd", file: "s", session: "vm-1", fd: 7, token: 1n },
      "EINVAL",
      /incoming session/,
    ],
    [
      { request: "retrieve-fd", file: "s", session: "vm-1", token: 9n },
      "ENOENT",
      /no file under token 9/,
    ],
    [{ request: "finish", file: "s", session: "vm-1" }, "EINVAL", /created in this boot/],
    [{ request: "get-name", file: "s", session: "vm-1" }, "EINVAL", /Linux 7.2/],
    [
      { request: "preserve-fd", file: "s", session: "vm-1", fd: 7 },
      "E2BIG",
      /does not understand the argument struct/,
    ],
  ];
  for (const [context, errno, meaning] of cases) {
    const error = liveupdateError(errno, context);
    assert.ok(error instanceof LiveupdateError && error instanceof KernelError);
    assert.equal(error.errno, errno);
    assert.equal(error.request, context.request);
    assert.match(error.message, meaning, `${context.request} ${errno}: ${error.message}`);
    assert.match(error.message, new RegExp(`failed with ${errno}: `));
    assert.match(error.message, /^[A-Z].*\.$/);
  }
});

Deno.test("a busy device exits with the busy code, a missing one as unsupported", () => {
  assert.equal(
    liveupdateError("EBUSY", { request: "open", file: "/dev/liveupdate" }).exitCode,
    ExitCode.Busy,
  );
  assert.equal(
    liveupdateError("ENOENT", { request: "open", file: "/dev/liveupdate" }).exitCode,
    ExitCode.Unsupported,
  );
  assert.equal(
    liveupdateError("EXDEV", { request: "finish", file: "s", session: "a" }).exitCode,
    ExitCode.Failed,
  );
});

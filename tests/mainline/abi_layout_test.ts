/**
 * The backend's struct layouts and ioctl numbers against the real UAPI header of
 * the built kernel (include/uapi/linux/liveupdate.h from linux-source-7.3):
 * compiles a small C program that prints sizeof/offsetof of every struct and the
 * ioctl request numbers, and compares them with agent/kernel/mainline/abi.ts.
 */

import assert from "node:assert/strict";
import { IOCTL, LAYOUT, SESSION_NAME_LENGTH } from "../../agent/kernel/mainline/abi.ts";
import { testKernel } from "./kernel.ts";

const PROGRAM = `
#include <stddef.h>
#include <stdio.h>
#include "linux/liveupdate.h"
#define S(t) printf(#t ".size=%zu\\n", sizeof(struct t))
#define O(t, f) printf(#t "." #f "=%zu\\n", offsetof(struct t, f))
#define I(n) printf(#n "=%lu\\n", (unsigned long)(n))
int main(void) {
  S(liveupdate_ioctl_create_session); O(liveupdate_ioctl_create_session, fd);
  O(liveupdate_ioctl_create_session, name);
  S(liveupdate_ioctl_retrieve_session); O(liveupdate_ioctl_retrieve_session, fd);
  O(liveupdate_ioctl_retrieve_session, name);
  S(liveupdate_session_preserve_fd); O(liveupdate_session_preserve_fd, fd);
  O(liveupdate_session_preserve_fd, token);
  S(liveupdate_session_retrieve_fd); O(liveupdate_session_retrieve_fd, fd);
  O(liveupdate_session_retrieve_fd, token);
  S(liveupdate_session_finish); O(liveupdate_session_finish, reserved);
  S(liveupdate_session_get_name); O(liveupdate_session_get_name, reserved);
  O(liveupdate_session_get_name, name);
  I(LIVEUPDATE_SESSION_NAME_LENGTH);
  I(LIVEUPDATE_IOCTL_CREATE_SESSION); I(LIVEUPDATE_IOCTL_RETRIEVE_SESSION);
  I(LIVEUPDATE_SESSION_PRESERVE_FD); I(LIVEUPDATE_SESSION_RETRIEVE_FD);
  I(LIVEUPDATE_SESSION_FINISH); I(LIVEUPDATE_SESSION_GET_NAME);
  return 0;
}
`;

Deno.test("ABI layouts and ioctl numbers match the kernel's UAPI header", async () => {
  const kernel = await testKernel();
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-mainline-abi-" });
  try {
    await Deno.mkdir(`${dir}/include/linux`, { recursive: true });
    await Deno.copyFile(kernel.uapiHeader, `${dir}/include/linux/liveupdate.h`);
    await Deno.writeTextFile(`${dir}/layout.c`, PROGRAM);
    const compile = await new Deno.Command("gcc", {
      args: ["-Wall", "-Werror", "-I", `${dir}/include`, "-o", `${dir}/layout`, `${dir}/layout.c`],
      stderr: "piped",
    }).output();
    assert.ok(compile.success, new TextDecoder().decode(compile.stderr));
    const run = await new Deno.Command(`${dir}/layout`, { stdout: "piped" }).output();
    const values = new Map(
      new TextDecoder().decode(run.stdout).trim().split("\n").map((line) => {
        const [key, value] = line.split("=");
        return [key!, Number(value)];
      }),
    );
    const expect: Record<string, number> = {
      "liveupdate_ioctl_create_session.size": LAYOUT.session.size,
      "liveupdate_ioctl_create_session.fd": LAYOUT.session.fd,
      "liveupdate_ioctl_create_session.name": LAYOUT.session.name,
      "liveupdate_ioctl_retrieve_session.size": LAYOUT.session.size,
      "liveupdate_ioctl_retrieve_session.fd": LAYOUT.session.fd,
      "liveupdate_ioctl_retrieve_session.name": LAYOUT.session.name,
      "liveupdate_session_preserve_fd.size": LAYOUT.fd.size,
      "liveupdate_session_preserve_fd.fd": LAYOUT.fd.fd,
      "liveupdate_session_preserve_fd.token": LAYOUT.fd.token,
      "liveupdate_session_retrieve_fd.size": LAYOUT.fd.size,
      "liveupdate_session_retrieve_fd.fd": LAYOUT.fd.fd,
      "liveupdate_session_retrieve_fd.token": LAYOUT.fd.token,
      "liveupdate_session_finish.size": LAYOUT.finish.size,
      "liveupdate_session_finish.reserved": LAYOUT.finish.reserved,
      "liveupdate_session_get_name.size": LAYOUT.getName.size,
      "liveupdate_session_get_name.reserved": LAYOUT.getName.reserved,
      "liveupdate_session_get_name.name": LAYOUT.getName.name,
      "LIVEUPDATE_SESSION_NAME_LENGTH": SESSION_NAME_LENGTH,
      "LIVEUPDATE_IOCTL_CREATE_SESSION": IOCTL.createSession,
      "LIVEUPDATE_IOCTL_RETRIEVE_SESSION": IOCTL.retrieveSession,
      "LIVEUPDATE_SESSION_PRESERVE_FD": IOCTL.preserveFd,
      "LIVEUPDATE_SESSION_RETRIEVE_FD": IOCTL.retrieveFd,
      "LIVEUPDATE_SESSION_FINISH": IOCTL.finish,
      "LIVEUPDATE_SESSION_GET_NAME": IOCTL.getName,
    };
    for (const [key, value] of Object.entries(expect)) {
      assert.equal(values.get(key), value, key);
    }
    assert.equal(values.size, Object.keys(expect).length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

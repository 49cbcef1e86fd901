import assert from "node:assert/strict";
import { ExitCode } from "../exit_codes.ts";
import { createTestHost, openLibc } from "../host/mod.ts";
import type { Command } from "./command.ts";
import { COMMANDS } from "./commands.ts";
import {
  changesHost,
  CHANGING_COMMANDS,
  checkControl,
  type Identity,
  NotPermittedError,
  processIdentity,
  READ_ONLY_COMMANDS,
} from "./control.ts";
import { NO_PLATFORM } from "./platform.ts";
import { runCli } from "./run.ts";

const user = (uid: number, groups: Record<string, boolean> = {}): Identity => ({
  uid: () => uid,
  inGroup: (name) => groups[name],
});

Deno.test("control: every command is either changing or read-only", () => {
  for (const command of COMMANDS) {
    const changing = CHANGING_COMMANDS.includes(command.name);
    const reading = READ_ONLY_COMMANDS.includes(command.name);
    assert.ok(changing !== reading || command.name === "fleet", `classify '${command.name}'`);
  }
  for (const name of ["prepare", "finish", "cancel", "recover", "watch"]) {
    assert.ok(changesHost(name, []), name);
  }
  for (const name of ["status", "check", "devices", "config"]) assert.ok(!changesHost(name, []));
  assert.ok(changesHost("fleet", ["release", "host-1"]));
  assert.ok(!changesHost("fleet", ["status"]));
  assert.ok(!changesHost("fleet", []));
  for (const action of ["serve", "prepare", "abort"]) assert.ok(changesHost("sessions", [action]));
  assert.ok(!changesHost("sessions", ["status"]));
});

Deno.test("control: root and control.group members pass, others get exit 9 and a clear message", () => {
  checkControl(user(0), "", "prepare");
  checkControl(user(1000, { liveupdate: true }), "liveupdate", "prepare");
  const refused = (identity: Identity, group: string) => {
    try {
      checkControl(identity, group, "prepare");
    } catch (error) {
      assert.ok(error instanceof NotPermittedError);
      assert.equal(error.exitCode, ExitCode.NotPermitted);
      return error.message;
    }
    assert.fail("not refused");
  };
  assert.match(refused(user(1000), ""), /only by root \(control\.group is not set\); .* uid 1000/);
  assert.match(
    refused(user(1000, { liveupdate: false }), "liveupdate"),
    /only by root or members of control\.group "liveupdate"; this process runs as uid 1000/,
  );
  assert.match(refused(user(1000), "nosuch"), /"nosuch" \(no such group exists on this host\)/);
});

Deno.test("control: runCli refuses a changing command before touching anything", async () => {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-control-" });
  try {
    await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/etc/liveupdate/config.d/50.toml`,
      `[paths]\nstate_dir = "${root}/state"\nruntime_dir = "${root}/run"\n`,
    );
    let ran = 0;
    const probe = (name: string): Command => ({
      name,
      summary: "",
      description: "",
      options: {},
      positionals: ["WHAT"],
      run: () => {
        ran++;
        return Promise.resolve(ExitCode.Success);
      },
    });
    const commands = ["prepare", "status", "fleet"].map(probe);
    const platform = { ...NO_PLATFORM, identity: user(1000) };
    for (const argv of [["prepare"], ["fleet", "release"]]) {
      const host = createTestHost();
      const code = await runCli([...argv, `--config-root=${root}`], host, { commands, platform });
      assert.equal(code, ExitCode.NotPermitted, argv.join(" "));
      assert.match(host.stderr.text(), new RegExp(`'liveupdate-agent ${argv.join(" ")}' changes`));
    }
    assert.equal(ran, 0);
    for (const argv of [["status"], ["fleet", "status"]]) {
      const code = await runCli([...argv, `--config-root=${root}`], createTestHost(), {
        commands,
        platform,
      });
      assert.equal(code, ExitCode.Success, argv.join(" "));
    }
    assert.equal(ran, 2);
    // Nothing was created for the refused commands.
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["etc"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("control: this process's identity through libc", () => {
  using libc = openLibc();
  const identity = processIdentity(() => libc);
  assert.equal(identity.uid(), Deno.uid());
  // The tests run as root, in group root (gid 0).
  assert.equal(identity.inGroup("root"), Deno.uid() === 0 ? true : identity.inGroup("root"));
  assert.equal(identity.inGroup("no-such-group-liveupdate-test"), undefined);
});

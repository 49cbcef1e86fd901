/**
 * The control surface with real identities: the CLI run as `nobody` (setpriv)
 * against a plain-file host. Commands that change anything exit 9 with a clear
 * sentence, before anything is touched; members of `control.group` get past the
 * check (and then meet the file permissions like anyone); reading is open.
 *
 * Deno's module cache and binary are copied where `nobody` can read them (/root is
 * private; under npx the binary lives there too).
 */

import assert from "node:assert/strict";
import { makeHost } from "./_host.ts";

const MAIN = new URL("../../agent/main.ts", import.meta.url).pathname;
const DENO_DIR = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
const NOBODY = 65534;
const decoder = new TextDecoder();

async function command(program: string, args: string[]): Promise<void> {
  const output = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" })
    .output();
  assert.equal(output.code, 0, `${program} ${args.join(" ")}: ${decoder.decode(output.stderr)}`);
}

Deno.test("control surface: only root or control.group may change anything", async () => {
  const host = await makeHost();
  const cache = await Deno.makeTempDir({ prefix: "liveupdate-control-deno-" });
  try {
    await command("cp", ["-r", `${DENO_DIR}/npm`, `${cache}/npm`]);
    // The deno binary too: under npx it lives below /root, which nobody cannot enter.
    const deno = `${cache}/deno`;
    await Deno.link(Deno.execPath(), deno).catch(() => Deno.copyFile(Deno.execPath(), deno));
    await command("chmod", ["-R", "a+rX", cache, host.dir]);
    // The state stays root's (0700), as in production.
    await Deno.mkdir(host.state, { mode: 0o700 });
    const runAs = async (groups: string[], argv: string[], config = "") => {
      await Deno.writeTextFile(host.configFile, host.configText + config);
      const output = await new Deno.Command("setpriv", {
        args: [
          `--reuid=${NOBODY}`,
          `--regid=${NOBODY}`,
          ...(groups.length > 0 ? [`--groups=${groups.join(",")}`] : ["--clear-groups"]),
          "env",
          `DENO_DIR=${cache}`,
          "HOME=/nonexistent",
          "NO_COLOR=1",
          deno,
          "run",
          "-A",
          "--cached-only",
          "--quiet",
          MAIN,
          ...argv,
          `--config-root=${host.configRoot}`,
        ],
        cwd: "/",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = decoder.decode(output.stderr);
      assert.doesNotMatch(stderr, /Uncaught|Unexpected internal error|^\s+at /m);
      return { code: output.code, stderr };
    };
    const refused = /changes the host and may be run only by root/;

    for (const argv of [["prepare"], ["finish"], ["cancel"], ["recover"], ["watch"]]) {
      const result = await runAs([], argv);
      assert.equal(result.code, 9, `${argv}: ${result.stderr}`);
      assert.match(result.stderr, refused);
      assert.match(result.stderr, /\(control\.group is not set\); this process runs as uid 65534/);
    }
    const release = await runAs([], ["fleet", "release"]);
    assert.equal(release.code, 9, release.stderr);
    assert.match(release.stderr, /'liveupdate-agent fleet release' changes the host/);
    // Nothing was touched: no lock, no record, no requested flag.
    assert.deepEqual([...Deno.readDirSync(host.state)], []);
    await assert.rejects(Deno.stat(host.run), Deno.errors.NotFound);

    // A group is configured, but nobody is not in it; or it does not exist.
    const outsider = await runAs([], ["prepare"], '[control]\ngroup = "users"\n');
    assert.equal(outsider.code, 9);
    assert.match(outsider.stderr, /root or members of control\.group "users"; this process/);
    const unknown = await runAs([], ["prepare"], '[control]\ngroup = "no-such-grp"\n');
    assert.equal(unknown.code, 9);
    assert.match(unknown.stderr, /"no-such-grp" \(no such group exists on this host\)/);

    // A member gets past the check, and then meets the files' permissions like anyone.
    const member = await runAs(["100"], ["prepare"], '[control]\ngroup = "users"\n');
    assert.notEqual(member.code, 9, member.stderr);
    assert.doesNotMatch(member.stderr, refused);

    // Reading is open (the kernel's files and the database are world-readable here).
    const status = await runAs([], ["devices", "--json"]);
    assert.doesNotMatch(status.stderr, refused);
    assert.notEqual(status.code, 9);
  } finally {
    await Deno.remove(cache, { recursive: true });
    await Deno.remove(host.dir, { recursive: true });
  }
});

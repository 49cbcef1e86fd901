import assert from "node:assert/strict";
import { assertDocument } from "../../tests/tools/assert_document.ts";
import { createTestHost } from "../host/mod.ts";
import { VERSION } from "../version.ts";
import { runCli } from "./run.ts";

async function configRoot(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-cli-" });
  for (const [file, content] of Object.entries(files)) {
    const full = `${root}/etc/liveupdate/config.d/${file}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, content);
  }
  return root;
}

Deno.test("--version prints the version", async () => {
  const host = createTestHost();
  assert.equal(await runCli(["--version"], host), 0);
  assert.equal(host.stdout.text(), `liveupdate-agent ${VERSION}\n`);
});

Deno.test("--help lists every command; COMMAND --help shows that command", async () => {
  const host = createTestHost();
  assert.equal(await runCli(["--help"], host), 0);
  assert.match(host.stdout.text(), /^Usage: liveupdate-agent/);
  assert.match(host.stdout.text(), /\n {2}status +Show/);
  assert.match(host.stdout.text(), /\n {2}config +Print/);
  const one = createTestHost();
  assert.equal(await runCli(["config", "--help"], one), 0);
  assert.match(one.stdout.text(), /^Usage: liveupdate-agent config \[OPTIONS\]/);
  assert.match(one.stdout.text(), /--json/);
});

Deno.test("no command prints help to stderr with the usage exit code", async () => {
  const host = createTestHost();
  assert.equal(await runCli([], host), 2);
  assert.equal(host.stdout.text(), "");
  assert.match(host.stderr.text(), /^Usage:/);
});

Deno.test("a usage error is one line on stderr and exit code 2", async () => {
  const host = createTestHost();
  assert.equal(await runCli(["status", "--nope"], host), 2);
  assert.equal(
    host.stderr.text(),
    "error: Unknown option '--nope' for 'liveupdate-agent status'. Run 'liveupdate-agent status --help' for usage.\n",
  );
});

Deno.test("config --json prints the merged configuration with its sources", async () => {
  const root = await configRoot({
    "50-site.toml": '[phases.prepare]\nstop = ["vmm.service"]\ntimeout = "90s"\n',
  });
  try {
    const host = createTestHost();
    assert.equal(await runCli(["config", "--json", `--config-root=${root}`], host), 0);
    const doc = assertDocument("config", host.stdout.text());
    const file = `${root}/etc/liveupdate/config.d/50-site.toml`;
    assert.equal(doc.version, 1);
    assert.deepEqual(doc.sources, [file]);
    assert.equal(doc.origins["phases.prepare.stop"], file);
    assert.deepEqual(doc.config.phases.prepare.stop, ["vmm.service"]);
    assert.equal(doc.config.phases.prepare.timeout, "1min 30s");
    assert.equal(doc.config.paths.sysfs, "/sys");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("config prints TOML naming the file of each non-default setting", async () => {
  const root = await configRoot({ "50-site.toml": '[paths]\nsysfs = "/srv/sys"\n' });
  try {
    const host = createTestHost();
    assert.equal(await runCli(["config", `--config-root=${root}`], host), 0);
    const text = host.stdout.text();
    assert.match(
      text,
      new RegExp(`\\nsysfs = "/srv/sys"  # ${root}/etc/liveupdate/config.d/50-site.toml\\n`),
    );
    assert.match(text, /\nproc = "\/proc"\n/);
    assert.match(text, /\n\[phases\.cancel\]\n/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a malformed config exits 3 with one line naming file and key", async () => {
  const root = await configRoot({ "50-site.toml": '[log]\nlevel = "loud"\n' });
  try {
    const host = createTestHost();
    assert.equal(await runCli(["config", `--config-root=${root}`], host), 3);
    assert.equal(host.stdout.text(), "");
    const lines = host.stderr.text().trimEnd().split("\n");
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^error: Config file ".*50-site\.toml": key "log\.level" is "loud"/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("log format follows the config, and --log-format overrides it", async () => {
  const root = await configRoot({ "50.toml": '[log]\nformat = "json"\n', "60.toml": "[oops]\n" });
  try {
    const host = createTestHost({ env: { JOURNAL_STREAM: "8:1" } });
    assert.equal(await runCli(["status", `--config-root=${root}`], host), 3);
    assert.match(host.stderr.text(), /^<3>Config file/, "journal before the config is known");
    const json = createTestHost();
    assert.equal(await runCli(["status", "--log-format=json", `--config-root=${root}`], json), 3);
    assert.equal(JSON.parse(json.stderr.text()).level, "error");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("config --reference documents every key", async () => {
  const host = createTestHost();
  assert.equal(await runCli(["config", "--reference", "--config-root=/nonexistent"], host), 0);
  assert.match(host.stdout.text(), /^\| key \| default \| meaning \|/);
  assert.match(host.stdout.text(), /\| `phases\.prepare\.timeout` \| `"2min"` \|/);
});

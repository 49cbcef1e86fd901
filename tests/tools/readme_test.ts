import assert from "node:assert/strict";
import { renderToml } from "../../agent/config/mod.ts";
import { loadConfig } from "../../agent/config/load.ts";
import { EXIT_CODE_DOCS } from "../../agent/exit_codes.ts";
import { VERSION } from "../../agent/version.ts";
import { normalizeTables, refresh } from "./readme_sections.ts";

const root = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

Deno.test("README's generated sections (config reference, exit codes) are current", async () => {
  const readme = await read("README.md");
  assert.equal(
    normalizeTables(refresh(readme)),
    normalizeTables(readme),
    "run: deno run -A tests/tools/readme_sections.ts --write",
  );
  for (const doc of EXIT_CODE_DOCS) {
    assert.ok(normalizeTables(readme).includes(`|${doc.code}|${doc.name}|`), doc.name);
  }
});

Deno.test(".ci/run runs exactly the README's test command", async () => {
  const readme = await read("README.md");
  const commands = /```sh\n([^\n]+)\n([^\n]+)\n```/.exec(readme);
  assert.ok(commands, "the README starts with a block of two commands");
  const demo = commands[1]!.replace(/\s+#.*$/, "");
  const test = commands[2]!.replace(/\s+#.*$/, "");
  assert.match(demo, / task demo$/);
  assert.match(test, / task test$/);
  const ci = await read(".ci/run");
  const lines = ci.split("\n").filter((line) => line.includes(" task "));
  assert.equal(lines.length, 1, "one test command in .ci/run");
  assert.ok(lines[0]!.startsWith(`${test} `), `.ci/run line: ${lines[0]}`);
});

Deno.test("the shipped defaults file equals the schema's defaults", async () => {
  const shipped = await read("config/00-defaults.toml");
  const body = shipped.split("\n").filter((line) => !line.startsWith("#")).join("\n").trimStart();
  const loaded = await loadConfig(Deno, { root: "/nonexistent-config-root" });
  assert.equal(body, renderToml(loaded));
});

Deno.test("the commented example configuration is valid", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/etc/liveupdate/config.d`, { recursive: true });
    await Deno.copyFile(
      new URL("config/example.toml", root),
      `${dir}/etc/liveupdate/config.d/50-site.toml`,
    );
    const { config } = await loadConfig(Deno, { root: dir });
    assert.deepEqual(config.phases.prepare.stop, ["vmm-manager.service"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno.json's version is the agent's version", async () => {
  const json = JSON.parse(await read("deno.json"));
  assert.equal(json.version, VERSION);
});

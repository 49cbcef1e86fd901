import assert from "node:assert/strict";
import { fakeBzImage } from "../../tests/kho/bzimage.ts";
import { type Config, defaultsOf, SCHEMA } from "../config/mod.ts";
import { assessCompatibility, checkHandover } from "./check.ts";

type Overrides = { [S in keyof Config]?: Partial<Config[S]> };

function config(overrides: Overrides): Config {
  const base = defaultsOf(SCHEMA) as Record<string, Record<string, unknown>>;
  for (const [section, values] of Object.entries(overrides)) {
    base[section] = { ...base[section], ...values };
  }
  return base as unknown as Config;
}

async function host(files: Record<string, string | Uint8Array>) {
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-compat-check-" });
  for (const [name, contents] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    if (typeof contents === "string") await Deno.writeTextFile(path, contents);
    else await Deno.writeFile(path, contents);
  }
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const RUNNING = { osRelease: () => "6.14.0-old" };
const IMAGE = fakeBzImage({ version: "6.15.0-new (b@h) #2 SMP" });

Deno.test("check: versions from each kernel's metadata, target release from its header", async () => {
  await using h = await host({
    "modules/6.14.0-old/liveupdate-abi": "LUO_VERSION=1.0\n",
    "modules/6.15.0-new/liveupdate-abi": "# shipped with the kernel\nLUO_VERSION=1.1\n",
    "boot/vmlinuz-new": IMAGE,
  });
  const report = await assessCompatibility({
    fs: Deno,
    releases: RUNNING,
    config: config({
      compat: { modules_dir: `${h.dir}/modules` },
      target: { kernel: `${h.dir}/boot/vmlinuz-new` },
    }),
  });
  assert.deepEqual(report.running, {
    image: null,
    release: "6.14.0-old",
    releaseSource: "uname",
    version: { major: 1, minor: 0 },
    versionSource: "metadata",
    metadataFile: `${h.dir}/modules/6.14.0-old/liveupdate-abi`,
    problem: null,
    note: null,
  });
  assert.equal(report.target.release, "6.15.0-new");
  assert.equal(report.target.releaseSource, "image header");
  assert.deepEqual(report.target.version, { major: 1, minor: 1 });
  assert.equal(report.verdict.outcome, "compatible");
  assert.equal(report.verdict.allowed, true);
});

Deno.test("check: a configured version overrides the metadata", async () => {
  await using h = await host({
    "modules/6.14.0-old/liveupdate-abi": "LUO_VERSION=1.0\n",
    "modules/6.15.0-new/liveupdate-abi": "LUO_VERSION=1.1\n",
    "boot/vmlinuz-new": IMAGE,
  });
  const report = await assessCompatibility({
    fs: Deno,
    releases: RUNNING,
    config: config({
      compat: { modules_dir: `${h.dir}/modules`, target_version: "2.0" },
      target: { kernel: `${h.dir}/boot/vmlinuz-new` },
    }),
  });
  assert.equal(report.target.versionSource, "config");
  assert.equal(report.verdict.outcome, "incompatible");
  assert.match(report.verdict.sentence, /LUO ABI 2\.0 has another major version/);
});

Deno.test("check: missing metadata is unknown and refused unless allowed", async () => {
  await using h = await host({
    "modules/6.14.0-old/liveupdate-abi": "LUO_VERSION=1.0\n",
    "boot/vmlinuz-new": IMAGE,
  });
  const settings = {
    compat: { modules_dir: `${h.dir}/modules` },
    target: { kernel: `${h.dir}/boot/vmlinuz-new` },
  };
  let report = await assessCompatibility({ fs: Deno, releases: RUNNING, config: config(settings) });
  assert.equal(report.target.problem, `no ${h.dir}/modules/6.15.0-new/liveupdate-abi`);
  assert.equal(report.verdict.outcome, "unknown");
  assert.equal(report.verdict.allowed, false);
  assert.match(
    report.verdict.sentence,
    /target kernel's LUO ABI version is unknown \(no .*6\.15\.0-new\/liveupdate-abi\)/,
  );

  report = await assessCompatibility({
    fs: Deno,
    releases: RUNNING,
    config: config({ ...settings, compat: { ...settings.compat, allow_unknown: true } }),
  });
  assert.equal(report.verdict.allowed, true);
  assert.equal(report.verdict.override, true);
});

Deno.test("check: malformed metadata is invalid and named", async () => {
  await using h = await host({
    "modules/6.14.0-old/liveupdate-abi": "LUO_VERSION=one\n",
    "modules/6.15.0-new/liveupdate-abi": "LUO_VERSION=1.0\n",
    "boot/vmlinuz-new": IMAGE,
  });
  const report = await assessCompatibility({
    fs: Deno,
    releases: RUNNING,
    config: config({
      compat: { modules_dir: `${h.dir}/modules`, allow_unknown: true },
      target: { kernel: `${h.dir}/boot/vmlinuz-new` },
    }),
  });
  assert.equal(report.verdict.outcome, "invalid");
  assert.equal(report.verdict.allowed, false);
  assert.match(
    report.verdict.sentence,
    /running kernel's metadata: .*liveupdate-abi is malformed: LUO_VERSION "one"/,
  );
});

Deno.test("check: no target configured, and an unreadable running release", async () => {
  const report = await assessCompatibility({
    fs: Deno,
    releases: {
      osRelease: () => {
        throw new Error("denied");
      },
    },
    config: config({ compat: { modules_dir: "/nonexistent" } }),
  });
  assert.equal(report.running.release, null);
  assert.match(report.running.problem!, /release cannot be read \(denied\)/);
  assert.equal(report.target.image, null);
  assert.match(report.target.problem!, /No target kernel is configured \(target\.kernel\)/);
  assert.match(report.verdict.sentence, /both kernels are unknown/);
});

Deno.test("handover check: compares the incoming version with the record", () => {
  const present = {
    status: "present" as const,
    file: "/d/kho/in/fdt",
    node: "liveupdate_orchestrator",
    version: { major: 1, minor: 0 },
  };
  assert.equal(checkHandover({ major: 1, minor: 0 }, present).matches, true);
  const other = checkHandover({ major: 1, minor: 1 }, present);
  assert.equal(other.matches, false);
  assert.match(other.sentence, /handed over LUO ABI 1\.0, but 1\.1 was recorded/);
  assert.equal(
    checkHandover(null, { status: "absent", file: "f", detail: "No f." }).matches,
    false,
  );
});

/**
 * config/70-liveupdate.rules with real udev (systemd 252's udevadm, which has no
 * `verify`): every example rule must parse without a complaint, and what udev
 * writes for a tagged device must be what the agent selects. udevadm runs in a
 * private mount namespace with its own /run and /dev, so the host is untouched.
 */
import assert from "node:assert/strict";
import { selectDevices } from "../../agent/devices/mod.ts";
import { libcKernelFs, openLibc } from "../../agent/host/mod.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const RULES = `${REPO}config/70-liveupdate.rules`;
const NAME = "70-liveupdate.rules";
/** A device every Linux host has, to run rules against. */
const DEVICE = "/sys/devices/virtual/mem/null";
const decoder = new TextDecoder();

let udevadm: Promise<string> | undefined;

/** The udevadm tests/tools/udevadm.sh finds or fetches. */
function findUdevadm(): Promise<string> {
  udevadm ??= (async () => {
    const out = await new Deno.Command("bash", { args: [`${REPO}tests/tools/udevadm.sh`] })
      .output();
    if (out.code !== 0) {
      throw new Error(
        `No udevadm (tests/tools/udevadm.sh failed): ${decoder.decode(out.stderr)}`,
      );
    }
    return decoder.decode(out.stdout).trim();
  })();
  return udevadm;
}

/** Example rules: comment lines that are a rule without their leading "#". */
function examples(text: string): { line: number; rule: string }[] {
  return text.split("\n").flatMap((line, index) =>
    /^#[A-Z][A-Z_]*(\{[^}]*\})?(==|!=|\+=|-=|:=|=)"/.test(line)
      ? [{ line: index + 1, rule: line.slice(1) }]
      : []
  );
}

/**
 * Runs `udevadm test` on {@link DEVICE} with `rules` as the only rules file of its
 * name; returns udevadm's output, the complaints about that file, and (copied out
 * of the private /run) the udev database it wrote.
 */
async function udevTest(
  rules: string,
): Promise<{ output: string; complaints: string[]; db: string; dispose(): Promise<void> }> {
  const binary = await findUdevadm();
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-udev-rules-" });
  await Deno.writeTextFile(`${dir}/${NAME}`, rules);
  const script = [
    "set -e",
    "mount -t tmpfs tmpfs /run",
    "mount -t tmpfs tmpfs /dev",
    "mkdir -p /run/udev/rules.d",
    `cp "$1/${NAME}" /run/udev/rules.d/`,
    `"$2" test "$3" >"$1/output" 2>&1 || echo "udevadm exit $?" >>"$1/output"`,
    'mkdir "$1/db" && cp -a /run/udev/. "$1/db/"',
  ].join("\n");
  const run = await new Deno.Command("unshare", {
    args: ["-m", "--propagation", "private", "sh", "-c", script, "sh", dir, binary, DEVICE],
  }).output();
  const dispose = () => Deno.remove(dir, { recursive: true });
  if (run.code !== 0) {
    await dispose();
    throw new Error(`unshare/udevadm failed (${run.code}): ${decoder.decode(run.stderr)}`);
  }
  const output = await Deno.readTextFile(`${dir}/output`);
  const complaints = output.split("\n").filter((line) =>
    line.startsWith(`/run/udev/rules.d/${NAME}:`)
  );
  return { output, complaints, db: `${dir}/db`, dispose };
}

Deno.test("udev rules: the shipped file and every example in it parse cleanly", async () => {
  const text = await Deno.readTextFile(RULES);
  const found = examples(text);
  assert.ok(found.length >= 5, `expected the five examples, found ${found.length}`);
  for (const { rule } of found) {
    assert.match(rule, /TAG\+="liveupdate"/, rule);
    assert.match(rule, /ENV\{LIVEUPDATE_UNIT\}="[^"]+\.service"/, rule);
  }
  const shipped = await udevTest(text);
  try {
    assert.deepEqual(shipped.complaints, [], shipped.output);
    assert.match(shipped.output, new RegExp(`Reading rules file: /run/udev/rules.d/${NAME}`));
  } finally {
    await shipped.dispose();
  }
  // Every example enabled at once, in place (line numbers stay those of the file).
  const enabled = text.split("\n").map((line, index) =>
    found.some((example) => example.line === index + 1) ? line.slice(1) : line
  ).join("\n");
  const all = await udevTest(enabled);
  try {
    assert.deepEqual(all.complaints, [], all.output);
  } finally {
    await all.dispose();
  }
});

Deno.test("udev rules: the check does catch a broken rule", async () => {
  const text = await Deno.readTextFile(RULES);
  const broken = text.replace(
    'LABEL="liveupdate_end"',
    'SUBSYSTEM="pci", TAG+="liveupdate"\nLIBEL=="x"\nLABEL="liveupdate_end"',
  );
  const result = await udevTest(broken);
  try {
    const line = broken.split("\n").indexOf('SUBSYSTEM="pci", TAG+="liveupdate"') + 1;
    assert.deepEqual(result.complaints, [
      `/run/udev/rules.d/${NAME}:${line} Invalid operator for SUBSYSTEM.`,
      `/run/udev/rules.d/${NAME}:${line + 1} Invalid key 'LIBEL'`,
    ]);
  } finally {
    await result.dispose();
  }
});

Deno.test("udev rules: what udev writes for a tagged device is what the agent selects", async () => {
  const text = await Deno.readTextFile(RULES);
  // Example 1's assignments, on a device this host has (vfio-pci devices it has not).
  const example = examples(text)[0]!.rule;
  const assignments = example.split(/,\s*/).filter((part) =>
    /^[A-Z_]+(\{[^}]*\})?(\+=|=)"/.test(part) && !part.includes("==")
  );
  assert.deepEqual(assignments, [
    'TAG+="liveupdate"',
    'ENV{LIVEUPDATE_UNIT}="vm-passthrough@%k.service"',
  ]);
  const rules = text.replace(
    'LABEL="liveupdate_end"',
    `SUBSYSTEM=="mem", KERNEL=="null", ${assignments.join(", ")}\nLABEL="liveupdate_end"`,
  );
  const result = await udevTest(rules);
  try {
    assert.deepEqual(result.complaints, [], result.output);
    assert.match(result.output, /^CURRENT_TAGS=:liveupdate:$/m);
    // The agent reads udev's real database and the host's real sysfs.
    using libc = openLibc();
    const selection = selectDevices({
      fs: libcKernelFs(libc),
      udevDb: result.db,
      sysfs: "/sys",
      tag: "liveupdate",
    });
    assert.deepEqual(selection.errors, []);
    assert.deepEqual(
      selection.devices.map((device) => [device.id, device.path, device.unit]),
      [["c1:3", "virtual/mem/null", "vm-passthrough@null.service"]],
    );
  } finally {
    await result.dispose();
  }
});

import assert from "node:assert/strict";
import { assertDocument } from "../../tests/tools/assert_document.ts";
import { generateTree, writePlainSysfs, writeUdevDb } from "../../tests/sim/tree.ts";
import { createTestHost, libcKernelFs, openLibc } from "../host/mod.ts";
import type { Platform } from "./platform.ts";
import { runCli } from "./run.ts";

const PORT = "pci0000:00/0000:00:01.0";

interface TestHostDir extends AsyncDisposable {
  root: string;
}

/** A plain sysfs tree (the RFC v1 backend reads it as files), its udev database, a config. */
async function hostDir(options: { luo?: boolean } = {}): Promise<TestHostDir> {
  const root = await Deno.makeTempDir({ prefix: "liveupdate-devices-cli-" });
  const tree = generateTree({ devices: 30, marked: 4 });
  await writePlainSysfs(tree, `${root}/sys`);
  await writeUdevDb(tree, `${root}/udev`);
  if (options.luo === false) {
    await Deno.remove(`${root}/sys/kernel/liveupdate`, { recursive: true });
  }
  await Deno.mkdir(`${root}/etc/liveupdate/config.d`, { recursive: true });
  await Deno.writeTextFile(
    `${root}/etc/liveupdate/config.d/50-test.toml`,
    [
      "[paths]",
      `sysfs = "${root}/sys"`,
      `udev_db = "${root}/udev"`,
      `state_dir = "${root}/state"`,
      `debugfs = "${root}/debug"`,
      "[kernel]",
      'backend = "rfc-v1"',
      "",
    ].join("\n"),
  );
  return { root, [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }) };
}

async function devices(root: string, ...args: string[]) {
  using libc = openLibc();
  const platform: Platform = { libc: () => libc, kernelFs: () => libcKernelFs(libc) };
  const host = createTestHost();
  const code = await runCli(["devices", `--config-root=${root}`, ...args], host, { platform });
  return { code, stdout: host.stdout.text(), stderr: host.stderr.text() };
}

Deno.test("devices --json: the selection and the kernel's view side by side", async () => {
  await using dir = await hostDir();
  const flag = (path: string) => `${dir.root}/sys/devices/${path}/liveupdate/requested`;
  await Deno.writeTextFile(flag(`${PORT}/0000:01:00.0`), "1\n");
  const { code, stdout } = await devices(dir.root, "--json");
  assert.equal(code, 0);
  const report = assertDocument("devices", stdout);
  assert.equal(report.version, 1);
  assert.deepEqual(report.kernel, { available: true, state: "normal" });
  assert.equal(report.selected.length, 4);
  assert.deepEqual(report.selected[0], {
    path: `${PORT}/0000:01:00.0`,
    id: "+pci:0000:01:00.0",
    unit: "vm-0.service",
    owned: false,
    flags: { requested: true, preserved: false, reclaimed: false },
  });
  assert.deepEqual(report.ancestors.map((a: { path: string }) => a.path), ["pci0000:00", PORT]);
  assert.deepEqual(report.summary, {
    selected: 4,
    requested: 1,
    toRequest: 3,
    toClear: 0,
    conflicts: 0,
    preserved: 0,
    pendingReclaim: 0,
  });
  assert.equal(report.record, `${dir.root}/state/devices-requested.json`);
  assert.equal(report.complete, false);
});

Deno.test("devices: the agent's old requests and others' requests are told apart", async () => {
  await using dir = await hostDir();
  const flag = (path: string) => `${dir.root}/sys/devices/${path}/liveupdate/requested`;
  // The agent requested 0000:01:00.1 once; its rule is gone now. Someone else requested 0000:01:00.2.
  await Deno.mkdir(`${dir.root}/state`);
  await Deno.writeTextFile(
    `${dir.root}/state/devices-requested.json`,
    JSON.stringify({
      version: 1,
      devices: [{ path: `${PORT}/0000:01:00.1`, id: "+pci:0000:01:00.1", unit: "old.service" }],
    }),
  );
  await Deno.writeTextFile(flag(`${PORT}/0000:01:00.1`), "1\n");
  await Deno.writeTextFile(flag(`${PORT}/0000:01:00.2`), "1\n");
  const partial = assertDocument("devices", (await devices(dir.root, "--json")).stdout);
  assert.equal(partial.deselected[0].path, `${PORT}/0000:01:00.1`);
  assert.equal(partial.deselected[0].unit, "old.service");
  assert.equal(partial.summary.toClear, 1);
  assert.deepEqual(partial.conflicts, []);

  const full = await devices(dir.root, "--json", "--all");
  const report = assertDocument("devices", full.stdout);
  assert.equal(report.complete, true);
  assert.deepEqual(report.conflicts.map((c: { path: string }) => c.path), [`${PORT}/0000:01:00.2`]);

  const text = (await devices(dir.root, "--all")).stdout;
  assert.match(text, /Requested by the agent earlier, no longer selected \(1\)/);
  assert.match(text, /Conflicts: requested by someone else, not selected \(1\)/);
  assert.match(text, /Summary: 4 selected, 0 requested, 4 to request, 1 to clear, 1 conflict\.$/m);
});

Deno.test("devices: after an update, who should reclaim what", async () => {
  await using dir = await hostDir();
  const file = (path: string, name: string) => `${dir.root}/sys/devices/${path}/liveupdate/${name}`;
  await Deno.writeTextFile(`${dir.root}/sys/kernel/liveupdate/state`, "updated\n");
  for (const path of [`${PORT}/0000:01:00.0`, `${PORT}/0000:01:00.4`, PORT, "pci0000:00"]) {
    await Deno.writeTextFile(file(path, "preserved"), "1\n");
  }
  await Deno.writeTextFile(file(`${PORT}/0000:01:00.0`, "reclaimed"), "1\n");
  const report = assertDocument("devices", (await devices(dir.root, "--json")).stdout);
  assert.deepEqual(report.kernel, { available: true, state: "updated" });
  assert.equal(report.summary.preserved, 4);
  assert.deepEqual(
    report.pendingReclaim.map((v: { path: string; unit?: string }) => [v.path, v.unit ?? null]),
    [[`${PORT}/0000:01:00.4`, "vm-1.service"], ["pci0000:00", null], [PORT, null]],
  );
  const text = (await devices(dir.root)).stdout;
  assert.match(text, /Preserved, waiting to be reclaimed \(3\)/);
  assert.match(text, /0000:01:00\.4 +vm-1\.service/);
  assert.match(text, /pci0000:00 +\(an ancestor: reclaimed with the devices below it\)/);
});

Deno.test("devices: without a live-update kernel the selection is still shown", async () => {
  await using dir = await hostDir({ luo: false });
  const { code, stdout } = await devices(dir.root);
  assert.equal(code, 0);
  assert.match(stdout, /^ +Kernel: unavailable — .*kernel\/liveupdate/m);
  assert.match(stdout, /Selected \(4\)/);
  assert.match(stdout, /0000:01:00\.0 +\+pci:0000:01:00\.0 +\? +\? +\? +vm-0\.service/);
});

Deno.test("devices: unusable udev data is an error (exit 1) naming the file", async () => {
  await using dir = await hostDir();
  await Deno.writeTextFile(`${dir.root}/udev/data/+pci:0000:01:00.0`, "nonsense\n");
  const { code, stdout } = await devices(dir.root);
  assert.equal(code, 1);
  assert.match(stdout, /^error: The udev data file ".*\+pci:0000:01:00\.0" line 1 is malformed/m);
});

/**
 * The agent runs under exactly its permission flags (agent/build/permissions.ts),
 * at its production paths, against kernel semantics (issue 9).
 *
 * In a private mount namespace made from the simulated kernel's (so its FUSE
 * mount is there), the helper `_exact_permissions_ns.ts` binds the simulator's
 * root over /sys, mounts a fresh /proc, and mounts tmpfs over /etc/liveupdate,
 * /run/udev, /var/lib/liveupdate, /run/liveupdate, /usr/lib/modules, /boot and
 * the metrics directory, filled with a config drop-in, the tree's udev database,
 * the kernels' metadata and a target image. There it runs `agent/main.ts` with
 * the launcher's `deno run` arguments — the same flags the compiled binary has —
 * and a probe doing what the update flow does (lock, reconcile devices, prepare,
 * cancel, metrics). Nothing on the host changes; the namespace and its mounts go
 * when the helper exits.
 *
 * Needs root, FUSE, overlayfs, `nsenter`/`unshare`, and the npm dependencies in
 * DENO_DIR (the agent runs with `--cached-only`).
 */
import assert from "node:assert/strict";
import { khoTree, versionProperty } from "../kho/fdt_builder.ts";
import { fakeBzImage } from "../kho/bzimage.ts";
import { startSim } from "../sim/harness.ts";
import { generateTree, writeUdevDb } from "../sim/tree.ts";
import type { NsResult, NsRun, NsSpec } from "./_exact_permissions_ns.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const MAIN = `${REPO}agent/main.ts`;
const NS_HELPER = `${REPO}tests/integration/_exact_permissions_ns.ts`;
const PROBE = `${REPO}tests/integration/_exact_permissions_probe.ts`;
const TARGET = "6.99.0-perms";

/** Stages the files each production path gets; returns the namespace spec. */
async function stage(dir: string, simMount: string, runs: NsRun[]): Promise<NsSpec> {
  const tree = generateTree({ devices: 40, marked: 4 });
  await Deno.mkdir(`${dir}/etc/config.d`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/etc/config.d/50-exact.toml`,
    [
      "# Production paths, except debugfs: the simulator has none (a path outside every",
      "# Deno permission, so reading it proves the KHO reader goes through libc).",
      "[paths]",
      `debugfs = "${dir}/debug"`,
      "[target]",
      `kernel = "/boot/vmlinuz-${TARGET}"`,
      "",
    ].join("\n"),
  );
  await writeUdevDb(tree, `${dir}/udev`);
  const release = Deno.osRelease();
  for (const [name, version] of [[release, "1.0"], [TARGET, "1.1"]]) {
    await Deno.mkdir(`${dir}/modules/${name}`, { recursive: true });
    await Deno.writeTextFile(`${dir}/modules/${name}/liveupdate-abi`, `LUO_VERSION=${version}\n`);
  }
  await Deno.mkdir(`${dir}/boot`);
  await Deno.writeFile(
    `${dir}/boot/vmlinuz-${TARGET}`,
    fakeBzImage({ version: `${TARGET} (perms@test) #1 SMP` }),
  );
  await Deno.mkdir(`${dir}/debug/kho/in`, { recursive: true });
  await Deno.writeFile(`${dir}/debug/kho/in/fdt`, khoTree(versionProperty(1, 0)));
  await Deno.mkdir(`${dir}/scratch`);
  return {
    simMount,
    mounts: {
      "/etc/liveupdate": `${dir}/etc`,
      "/run/udev": `${dir}/udev`,
      "/var/lib/liveupdate": "",
      "/run/liveupdate": "",
      "/usr/lib/modules": `${dir}/modules`,
      "/boot": `${dir}/boot`,
      "/var/lib/prometheus/node-exporter": "",
    },
    scratch: `${dir}/scratch`,
    deno: Deno.execPath(),
    denoDir: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    runs,
  };
}

/** Runs the helper in a namespace made from the simulator's; returns each run by name. */
async function runInNamespace(simPid: number, specFile: string): Promise<Map<string, NsResult>> {
  const output = await new Deno.Command("nsenter", {
    args: [
      "-t",
      String(simPid),
      "-m",
      "--",
      "unshare",
      "-m",
      "--propagation",
      "private",
      "--mount-proc",
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      NS_HELPER,
      specFile,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `the namespace helper failed:\n${stderr}\n${stdout}`);
  const { runs } = JSON.parse(stdout) as { runs: NsResult[] };
  return new Map(runs.map((run) => [run.name, run]));
}

/** The run's JSON output, after checking it succeeded without a word on stderr. */
function succeeded(runs: Map<string, NsResult>, name: string): Record<string, unknown> {
  const run = runs.get(name)!;
  assert.equal(run.code, 0, `${name} exited ${run.code}:\n${run.stderr}\n${run.stdout}`);
  assert.equal(run.stderr, "", `${name} wrote to stderr`);
  return JSON.parse(run.stdout);
}

Deno.test("the agent runs under exactly its permission flags at its production paths", async () => {
  await using sim = await startSim({ tree: generateTree({ devices: 40, marked: 4 }) });
  const dir = await Deno.makeTempDir({ prefix: "liveupdate-exact-perms-" });
  try {
    const spec = await stage(dir, sim.mountpoint, [
      { name: "status", script: MAIN, args: ["status", "--json"] },
      { name: "devices", script: MAIN, args: ["devices", "--json"] },
      { name: "config", script: MAIN, args: ["config", "--json"] },
      { name: "probe", script: PROBE, args: [] },
      { name: "devices after", script: MAIN, args: ["devices", "--json"] },
      // A control: the same command without --allow-ffi must fail, saying why.
      { name: "no ffi", script: MAIN, args: ["status", "--json"], without: ["--allow-ffi"] },
    ]);
    await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify(spec));
    const runs = await runInNamespace(sim.pid, `${dir}/spec.json`);

    // status: the simulated kernel at /sys, the host's release from /proc, the KHO tree
    // from debugfs, the metadata and the target image through Deno's file API.
    const status = succeeded(runs, "status") as Record<string, Record<string, unknown>>;
    assert.deepEqual(status.config!.sources, ["/etc/liveupdate/config.d/50-exact.toml"]);
    const kernel = status.kernel as Record<string, unknown>;
    assert.equal(kernel.available, true, String(kernel.reason));
    assert.equal(kernel.backend, "rfc-v1");
    assert.equal(kernel.location, "/sys/kernel/liveupdate");
    assert.equal(kernel.state, "normal");
    const probes = kernel.probes as { backend: string; summary: string }[];
    // /dev/liveupdate examined through libc (Deno would refuse: "cannot be examined").
    assert.match(probes.find((p) => p.backend === "mainline")!.summary, /^No \/dev\/liveupdate:/);
    assert.deepEqual(status.handover, {
      status: "present",
      file: `${dir}/debug/kho/in/fdt`,
      version: "1.0",
      detail: null,
    });
    const compat = status.compat as Record<string, Record<string, unknown>>;
    assert.equal(compat.running!.release, Deno.osRelease());
    assert.equal(compat.running!.version, "1.0");
    assert.equal(
      compat.running!.metadataFile,
      `/usr/lib/modules/${Deno.osRelease()}/liveupdate-abi`,
    );
    assert.equal(compat.target!.release, TARGET);
    assert.equal(compat.target!.releaseSource, "image header");
    assert.equal(compat.target!.version, "1.1");
    assert.equal((compat.verdict as Record<string, unknown>).outcome, "compatible");

    // devices: the udev database in /run/udev, the simulator's sysfs, the record's place.
    const devices = succeeded(runs, "devices") as Record<string, unknown>;
    assert.deepEqual(devices.kernel, { available: true, state: "normal" });
    assert.equal((devices.selected as unknown[]).length, 4);
    assert.equal(devices.record, "/var/lib/liveupdate/devices-requested.json");
    assert.equal((devices.summary as Record<string, number>).toRequest, 4);

    const config = succeeded(runs, "config") as Record<string, Record<string, unknown>>;
    assert.equal((config.config!.paths as Record<string, string>).sysfs, "/sys");

    // The update flow's host access: procfs facts, the lock, kernel writes with their
    // errno, the record and the metrics file.
    const probe = succeeded(runs, "probe") as Record<string, unknown>;
    const facts = probe.facts as Record<string, unknown>;
    assert.equal(facts.release, Deno.osRelease());
    assert.equal(facts.bootId, (await Deno.readTextFile("/proc/sys/kernel/random/boot_id")).trim());
    assert.equal(facts.hostname, Deno.hostname());
    assert.equal(facts.cmdline, (await Deno.readTextFile("/proc/cmdline")).replace(/\n$/, ""));
    assert.ok((facts.uptime as number) > 0);
    const requested = probe.requested as string[];
    assert.equal(requested.length, 4);
    assert.ok((probe.record as string).includes(requested[0]!));
    assert.deepEqual(probe.flags, { requested: true, preserved: false, reclaimed: false });
    assert.equal(probe.prepared, "prepared");
    assert.deepEqual(probe.refused, { errno: "EINVAL", operation: "prepare" });
    assert.equal(probe.cancelled, "normal");
    assert.match(probe.metrics as string, /^liveupdate_/m);
    for (const path of requested) {
      assert.equal(await Deno.readTextFile(sim.device(path, "liveupdate/requested")), "1\n");
    }

    // devices again: the agent's own requests, read back from its record.
    const after = succeeded(runs, "devices after") as Record<string, unknown>;
    const selected = after.selected as { owned: boolean; flags: { requested: boolean } }[];
    assert.ok(selected.every((view) => view.owned && view.flags.requested));
    assert.equal((after.summary as Record<string, number>).toRequest, 0);

    const control = runs.get("no ffi")!;
    assert.notEqual(control.code, 0, "without --allow-ffi the agent cannot reach the kernel");
    assert.match(control.stderr, /must run with --allow-ffi/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The metrics file after a real update on the simulated machine, read by a strict
 * parser of the text format and checked by Prometheus' own promtool (from Debian's
 * prometheus package, unpacked by tests/tools/promtool.sh).
 */

import assert from "node:assert/strict";
import { runCli } from "../../agent/cli/mod.ts";
import { createTestHost, libcKernelFs } from "../../agent/host/mod.ts";
import { dbusNextConnector } from "../../agent/systemd/dbus_next.ts";
import { parseMetricsText } from "../tools/prometheus_text.ts";
import { SMALL, startUpdateRig, type UpdateRig } from "./_update_rig.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

async function promtool(): Promise<string> {
  const out = await new Deno.Command("bash", { args: [`${REPO}tests/tools/promtool.sh`] }).output();
  if (out.code !== 0) throw new Error(`No promtool: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout).trim();
}

async function promtoolCheck(file: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(await promtool(), {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(await Deno.readFile(file));
  await writer.close();
  const out = await child.output();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

async function cli(rig: UpdateRig, ...argv: string[]): Promise<number> {
  const host = createTestHost({ dbus: dbusNextConnector });
  const code = await runCli([...argv, `--config-root=${rig.configRoot}`], host, {
    platform: { libc: () => rig.libc, kernelFs: () => libcKernelFs(rig.libc) },
  });
  assert.equal(code, 0, host.stderr.text());
  return code;
}

Deno.test("after an update the metrics file is valid and says what happened", async () => {
  await using rig = await startUpdateRig();
  await rig.start("vmm.service");
  await cli(rig, "prepare");
  const during = parseMetricsText(await Deno.readTextFile(rig.metricsFile)).samples;
  assert.equal(during.get("liveupdate_attempt_in_progress"), 1, "written after prepare");
  assert.equal(during.get('liveupdate_kernel_state{state="updated"}'), 1);

  const reclaim = (async () => {
    for (const path of [...SMALL.selected, ...SMALL.ancestors]) await rig.sim.setReclaimed(path);
  })();
  await cli(rig, "finish");
  await reclaim;
  const record = (await rig.record())!;
  const text = await Deno.readTextFile(rig.metricsFile);
  const { samples, types } = parseMetricsText(text);
  for (const [name, type] of types) {
    assert.match(name, /^liveupdate_/);
    assert.equal(type, "gauge", name);
  }
  assert.equal(
    samples.get("liveupdate_last_attempt_timestamp_seconds"),
    Date.parse(record.created) / 1000,
  );
  assert.equal(
    samples.get("liveupdate_last_attempt_end_timestamp_seconds"),
    Date.parse(record.outcome!.at) / 1000,
  );
  for (const result of ["succeeded", "failed", "rolled-back", "refused", "cancelled"]) {
    const expected = result === "succeeded" ? 1 : 0;
    assert.equal(samples.get(`liveupdate_last_attempt_result{result="${result}"}`), expected);
    assert.equal(samples.get(`liveupdate_attempts_recorded{result="${result}"}`), expected);
  }
  assert.equal(samples.get("liveupdate_attempt_in_progress"), 0);
  for (const step of record.steps) {
    const value = samples.get(`liveupdate_step_duration_seconds{step="${step.name}"}`);
    assert.ok(value !== undefined && value >= 0, step.name);
  }
  assert.deepEqual(
    ["selected", "preserved", "reclaimed", "unreclaimed"].map((state) =>
      samples.get(`liveupdate_devices{state="${state}"}`)
    ),
    [2, 4, 4, 0],
  );
  for (const verdict of ["compatible", "incompatible", "unknown", "invalid"]) {
    assert.equal(
      samples.get(`liveupdate_compat_verdict{verdict="${verdict}"}`),
      verdict === "compatible" ? 1 : 0,
    );
  }
  assert.equal(samples.get("liveupdate_compat_override"), 0);
  assert.equal(samples.get('liveupdate_kernel_state{state="normal"}'), 1);
  assert.ok((samples.get("liveupdate_kexec_to_finish_seconds") ?? -1) >= 0);
  assert.equal([...samples.keys()].some((key) => key.startsWith("liveupdate_fleet")), false);
  const mode = (await Deno.stat(rig.metricsFile)).mode! & 0o777;
  assert.equal(mode, 0o644, "readable by node_exporter");

  const checked = await promtoolCheck(rig.metricsFile);
  assert.equal(checked.code, 0, checked.output);
  assert.equal(checked.output.trim(), "", "promtool has no complaint");
});

Deno.test("the watcher rewrites the metrics file when the kernel's state changes", async () => {
  await using rig = await startUpdateRig({ config: '[kernel]\nwatch_interval = "100ms"\n' });
  const watcher = new Deno.Command(Deno.execPath(), {
    args: rig.cliArgs("watch"),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = (async () => {
    let text = "";
    for await (const chunk of watcher.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
    return text;
  })();
  const stateIn = async (state: string) => {
    for (let i = 0; i < 600; i++) {
      try {
        const { samples } = parseMetricsText(await Deno.readTextFile(rig.metricsFile));
        if (samples.get(`liveupdate_kernel_state{state="${state}"}`) === 1) return samples;
      } catch {
        // not written yet, or being replaced
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`The metrics file never showed state ${state}`);
  };
  try {
    const first = await stateIn("normal");
    assert.equal(first.get("liveupdate_attempt_in_progress"), 0);
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "1");
    await stateIn("prepared");
    await Deno.writeTextFile(rig.sim.path("kernel/liveupdate/prepare"), "0");
    await stateIn("normal");
  } finally {
    watcher.kill("SIGTERM");
    const status = await watcher.status;
    const log = await stderr;
    assert.equal(status.code, 0, log);
  }
});

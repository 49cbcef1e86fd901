/**
 * sd_notify readiness through the agent's notifier, against a real manager's notify
 * socket: a Type=notify unit running a Deno script that uses the notifier.
 */
import assert from "node:assert/strict";
import { startPrivateSystemd } from "./harness.ts";

const SCRIPT = new URL("./notify_service.ts", import.meta.url).pathname;

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`gave up waiting for ${what}`);
}

Deno.test("a Type=notify unit becomes active when the agent's notifier sends READY=1", async () => {
  await using systemd = await startPrivateSystemd();
  const go = `${systemd.dir}/go`;
  const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
  const unit = [
    "[Unit]",
    "Description=notifier test",
    "[Service]",
    "Type=notify",
    "NotifyAccess=main",
    "TimeoutStartSec=300s",
    `Environment=DENO_DIR=${denoDir} NO_COLOR=1`,
    `ExecStart=${Deno.execPath()} run --quiet --allow-env --allow-ffi --allow-read ${SCRIPT} ${go}`,
    "",
  ].join("\n");
  await systemd.installUnits({ "notifier.service": unit });
  // --no-block: the start job stays queued until READY=1 arrives.
  const start = await systemd.systemctl(["start", "--no-block", "notifier.service"]);
  assert.equal(start.code, 0, start.stderr);
  // STATUS= before READY=1 arrives while the unit is still activating.
  await waitFor(
    async () => (await systemd.property("notifier.service", "StatusText")).startsWith("starting"),
    "the first STATUS=",
  );
  assert.equal(await systemd.property("notifier.service", "ActiveState"), "activating");
  await Deno.writeTextFile(go, "");
  await waitFor(
    async () => await systemd.property("notifier.service", "ActiveState") === "active",
    "READY=1",
  );
  const mainPid = await systemd.property("notifier.service", "MainPID");
  const status = await systemd.property("notifier.service", "StatusText");
  // READY=1 came from the main process itself (NotifyAccess=main accepts no other).
  assert.notEqual(mainPid, "0");
  assert.equal(status, `ready as pid ${mainPid}`);
  const stop = await systemd.systemctl(["stop", "notifier.service"]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(await systemd.property("notifier.service", "Result"), "success");
});

/**
 * `liveupdate-agent watch`: the long-running watcher (liveupdate-agent.service,
 * Type=notify). At start it recovers an interrupted update; then it follows the
 * kernel's live-update state, logs every change, keeps `systemctl status` and the
 * metrics current, and pings the watchdog.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import { KernelUnsupportedError } from "../kernel/mod.ts";
import { createNotifier } from "../systemd/mod.ts";
import { BusyError, resolveUpdate } from "../update/mod.ts";
import type { Command } from "./command.ts";
import { refreshAllMetrics } from "./metrics_refresh.ts";
import { createUpdateContext } from "./update_context.ts";

/** How often the watcher rewrites the metrics file besides at every state change. */
const METRICS_REFRESH_MS = 15_000;

/** Runs until SIGTERM or SIGINT. */
export const watchCommand: Command = {
  name: "watch",
  summary: "Watch the kernel's live-update state (the liveupdate-agent.service daemon).",
  description: [
    "Recovers an interrupted update first (as 'recover' does), then follows the kernel's",
    "live-update state through poll(2) with a bounded re-read (kernel.watch_interval), logs",
    "every change, updates the metrics file (at every change and every 15 s) and the service",
    "status line, and sends READY=1, STATUS= and WATCHDOG=1 to systemd when run as a",
    "Type=notify service. Stops on SIGTERM.",
  ].join("\n"),
  options: {},
  async run(context) {
    const { log, host, platform } = context;
    const { update, close } = await createUpdateContext(context);
    const notifier = createNotifier(host.env, platform.libc);
    const controller = new AbortController();
    const stop = () => controller.abort();
    Deno.addSignalListener("SIGTERM", stop);
    Deno.addSignalListener("SIGINT", stop);
    const pingEvery = notifier.watchdogIntervalMs();
    const ping = pingEvery ? setInterval(() => notifier.watchdog(), pingEvery) : undefined;
    // The metrics change without a state change too (a fleet wait grows), so refresh on a timer.
    let lastState: string | undefined;
    let refreshing: Promise<void> | undefined;
    const metrics = setInterval(() => {
      refreshing ??= refreshAllMetrics(update, lastState).finally(() => refreshing = undefined);
    }, METRICS_REFRESH_MS);
    try {
      try {
        const resolution = await resolveUpdate(update, "recover");
        if (resolution.action !== "nothing") log.notice(resolution.message);
      } catch (error) {
        if (error instanceof BusyError) log.info(`Not recovering: ${error.message}`);
        else log.error(`Recovering at start failed: ${describeError(error)}`);
      }
      let kernel;
      try {
        kernel = await update.openKernel();
      } catch (error) {
        if (!(error instanceof KernelUnsupportedError)) throw error;
        notifier.ready(`No live-update interface: ${error.message}`);
        log.warning(`Nothing to watch: ${error.message}`);
        await new Promise<void>((resolve) =>
          controller.signal.addEventListener("abort", () => resolve())
        );
        return ExitCode.Success;
      }
      const machine = kernel.stateMachine;
      if (!machine) {
        notifier.ready(`Watching ${kernel.location} (${kernel.backend}; no global state)`);
        await new Promise<void>((resolve) =>
          controller.signal.addEventListener("abort", () => resolve())
        );
        return ExitCode.Success;
      }
      let ready = false;
      for await (const observation of machine.watch({ signal: controller.signal })) {
        const line = `Kernel live-update state: ${observation.state}`;
        if (!ready) {
          notifier.ready(line);
          ready = true;
          log.info(`Watching ${kernel.location}; the state is "${observation.state}".`);
        } else {
          notifier.status(line);
          log.event(
            "kernel-state-changed",
            `The kernel's live-update state is now "${observation.state}".`,
            {
              state: observation.state,
              via: observation.via,
            },
          );
        }
        lastState = observation.state;
        await refreshAllMetrics(update, observation.state);
      }
      return ExitCode.Success;
    } finally {
      notifier.stopping("Stopping");
      if (ping !== undefined) clearInterval(ping);
      clearInterval(metrics);
      await refreshing;
      Deno.removeSignalListener("SIGTERM", stop);
      Deno.removeSignalListener("SIGINT", stop);
      notifier.close();
      await close();
    }
  },
};

/**
 * A tiny Type=notify service for tests: uses the agent's notifier to report
 * "starting", waits until the file named by its argument exists, then says READY=1
 * with a status line, and STOPPING=1 on SIGTERM.
 *
 * @module
 */

import { lazyLibc, realEnvironment } from "../../agent/host/mod.ts";
import { createNotifier } from "../../agent/systemd/notify.ts";

const notifier = createNotifier(realEnvironment, lazyLibc());
const go = Deno.args[0]!;
notifier.status("starting: waiting for the test");
for (;;) {
  try {
    Deno.statSync(go);
    break;
  } catch {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
Deno.addSignalListener("SIGTERM", () => {
  notifier.stopping("stopping on SIGTERM");
  notifier.close();
  Deno.exit(0);
});
notifier.ready(`ready as pid ${Deno.pid}`);
setInterval(() => {}, 1 << 30);

/**
 * `cancel`: undo an update at any point before the kexec — the same undo as a
 * failure, ending in status "cancelled".
 *
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import type { UpdateContext } from "./context.ts";
import type { Plan } from "./plan.ts";
import { completeRollback, rollbackFinal } from "./rollback.ts";
import type { Resolution } from "./resolve.ts";
import { UpdateFailedError } from "./update_error.ts";

/**
 * Cancels the open attempt (preparing, prepared or rolling back). Takes the update
 * lock: a prepare that is still running must be stopped first (SIGTERM, which
 * makes it roll back: `systemctl stop liveupdate-prepare`).
 */
export async function runCancel(context: UpdateContext): Promise<Resolution> {
  using _lock = context.lock();
  const open = await context.store.open();
  const kernel = await context.openKernel();
  const machine = kernel.stateMachine;
  if (!open) {
    if (machine && await machine.state() === "prepared") {
      await machine.cancel();
      return {
        action: "cancelled-kernel",
        message: "No attempt of this agent is open; the kernel was prepared and is cancelled now.",
        exitCode: ExitCode.Success,
      };
    }
    return { action: "nothing", message: "Nothing to cancel.", exitCode: ExitCode.Success };
  }
  if (open.status === "kexec-issued" || open.status === "finishing") {
    throw new UpdateFailedError(
      `Attempt ${open.id} is "${open.status}": the kexec was already issued, so it cannot be ` +
        "cancelled. If the machine did not reboot, run 'liveupdate-agent recover'.",
    );
  }
  const manager = await context.systemd();
  const log = context.log.with({ attempt: open.id });
  const rolled = await completeRollback(
    { ...context, log },
    open,
    open.plan as unknown as Plan,
    kernel,
    manager,
    `Attempt ${open.id} was cancelled by the operator.`,
    undefined,
    rollbackFinal(open, "cancelled"),
  );
  return {
    action: rolled.status === "rolling-back" ? "rollback-incomplete" : rolled.status,
    message: rolled.message,
    exitCode: rolled.exitCode,
    record: open,
  };
}

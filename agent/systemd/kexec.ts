/**
 * The last step of an update: asking systemd to kexec into the loaded kernel. The
 * update flow receives a {@link KexecTrigger}; production uses the manager's, tests
 * substitute this one call (a user manager, or a machine without LUO, cannot kexec).
 *
 * @module
 */

import type { SystemdManager } from "./manager.ts";

/** Asks the service manager to kexec into the loaded kernel. */
export interface KexecTrigger {
  /** Resolves once systemd has accepted the request; the agent should then exit. */
  kexec(): Promise<void>;
}

/** How the manager kexecs. */
export type KexecMode =
  /** `systemctl kexec`: start kexec.target (replace-irreversibly); units stop cleanly first. */
  | "clean"
  /** `systemctl --force kexec`: Manager.KExec(), no unit is stopped first. */
  | "immediate";

/** The real trigger: the manager's kexec (clean by default). */
export function managerKexec(manager: SystemdManager, mode: KexecMode = "clean"): KexecTrigger {
  return {
    kexec: () => mode === "clean" ? manager.startKexec() : manager.kexecImmediately(),
  };
}

/**
 * Unit files for tests against the private manager: the agent's own phase targets
 * (from units/) and generated test services.
 *
 * @module
 */

import { shippedPhaseTargets } from "../../agent/rehearsal/phase_targets.ts";

const UNITS_DIR = new URL("../../units/", import.meta.url);

/** The agent's phase targets, as shipped in units/ (file name → contents). */
export function phaseTargetFiles(): Promise<Record<string, string>> {
  return shippedPhaseTargets(UNITS_DIR.pathname);
}

/** The kind of a generated test service. */
export type TestUnitKind = "simple" | "oneshot" | "notify";

/** Generated services: names in order, and the files. */
export interface TestUnits {
  names: string[];
  kinds: Record<string, TestUnitKind>;
  files: Record<string, string>;
}

/**
 * `count` services named `<prefix>-NNN.service`, cycling through simple (a
 * long-running process), oneshot (RemainAfterExit) and notify (ready through
 * systemd-notify from inside the service); every unit whose index ends in 5–9 is
 * ordered after the one five before it (so half of them wait for another).
 */
export function phaseTestUnits(count: number, prefix = "lut"): TestUnits {
  const names: string[] = [];
  const kinds: Record<string, TestUnitKind> = {};
  const files: Record<string, string> = {};
  const name = (i: number) => `${prefix}-${String(i).padStart(3, "0")}.service`;
  for (let i = 0; i < count; i++) {
    const unit = name(i);
    const kind: TestUnitKind = (["simple", "oneshot", "notify"] as const)[i % 3]!;
    const after = i % 10 >= 5 ? `After=${name(i - 5)}\n` : "";
    const service = {
      simple: "Type=simple\nExecStart=/bin/sleep infinity\n",
      oneshot: "Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
      notify: "Type=notify\nNotifyAccess=all\n" +
        `ExecStart=/bin/sh -c 'systemd-notify --ready --status="unit ${i} ready"; exec sleep infinity'\n`,
    }[kind];
    names.push(unit);
    kinds[unit] = kind;
    files[unit] = `[Unit]\nDescription=Test unit ${i} (${kind})\n${after}\n[Service]\n${service}`;
  }
  return { names, kinds, files };
}

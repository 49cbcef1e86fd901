/**
 * The health gate: a slot is released only when the host is healthy again after
 * `finish`. The update flow provides the checks (it has the systemd client and
 * the device layer); this file defines the interfaces, the checks the
 * configuration names (`fleet.health.units`, `fleet.health.devices_reclaimed`)
 * and how they combine.
 *
 * @module
 */

/** The outcome of one check. */
export interface HealthCheckResult {
  ok: boolean;
  /** What was seen, for the record ("vmm.service is failed"). */
  detail: string;
}

/** One health check. */
export interface HealthCheck {
  /** A short name ("units-active", "devices-reclaimed"). */
  name: string;
  check(signal?: AbortSignal): Promise<HealthCheckResult>;
}

/** What a pass of the gate saw. */
export interface HealthReport {
  healthy: boolean;
  checks: ({ name: string } & HealthCheckResult)[];
}

/** Decides whether the host is healthy again. */
export interface HealthGate {
  check(signal?: AbortSignal): Promise<HealthReport>;
}

/** A gate that passes when every check passes. A check that throws fails, with its message. */
export function healthGate(checks: readonly HealthCheck[]): HealthGate {
  return {
    async check(signal) {
      const results: HealthReport["checks"] = [];
      for (const check of checks) {
        signal?.throwIfAborted();
        try {
          results.push({ name: check.name, ...await check.check(signal) });
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          const message = error instanceof Error ? error.message : String(error);
          results.push({ name: check.name, ok: false, detail: `check failed: ${message}` });
        }
      }
      return { healthy: results.every((result) => result.ok), checks: results };
    },
  };
}

/** Reads a unit's ActiveState ("active", "failed", …). The systemd layer implements it. */
export interface UnitStateReader {
  activeState(unit: string, signal?: AbortSignal): Promise<string>;
}

/** Passes when every unit in `units` is active. */
export function unitsActiveCheck(units: readonly string[], reader: UnitStateReader): HealthCheck {
  return {
    name: "units-active",
    async check(signal) {
      const bad: string[] = [];
      for (const unit of units) {
        const state = await reader.activeState(unit, signal);
        if (state !== "active") bad.push(`${unit} is ${state}`);
      }
      return bad.length === 0
        ? {
          ok: true,
          detail: units.length === 0 ? "no units to check" : `${units.length} unit(s) active`,
        }
        : { ok: false, detail: bad.join(", ") };
    },
  };
}

/** Lists preserved devices not reclaimed yet. The device layer implements it. */
export interface ReclaimReader {
  unreclaimed(signal?: AbortSignal): Promise<readonly string[]>;
}

/** Passes when every preserved device has been reclaimed. */
export function devicesReclaimedCheck(reader: ReclaimReader): HealthCheck {
  return {
    name: "devices-reclaimed",
    async check(signal) {
      const left = await reader.unreclaimed(signal);
      return left.length === 0 ? { ok: true, detail: "every preserved device reclaimed" } : {
        ok: false,
        detail: `not reclaimed: ${left.slice(0, 5).join(", ")}` +
          (left.length > 5 ? ` and ${left.length - 5} more` : ""),
      };
    },
  };
}

/** What the flow provides to build the configured gate. */
export interface HealthProviders {
  units?: UnitStateReader;
  devices?: ReclaimReader;
  /** Further checks of the flow's own. */
  extra?: readonly HealthCheck[];
}

/**
 * The gate the configuration asks for: `units` active (needs `providers.units`
 * when any are listed) and, with `devices_reclaimed`, every preserved device
 * reclaimed (needs `providers.devices`), plus `providers.extra`.
 */
export function configuredHealthGate(
  config: { readonly units: readonly string[]; readonly devices_reclaimed: boolean },
  providers: HealthProviders,
): HealthGate {
  const checks: HealthCheck[] = [];
  if (config.units.length > 0) {
    if (!providers.units) throw new TypeError("fleet.health.units needs a UnitStateReader");
    checks.push(unitsActiveCheck(config.units, providers.units));
  }
  if (config.devices_reclaimed) {
    if (!providers.devices) {
      throw new TypeError("fleet.health.devices_reclaimed needs a ReclaimReader");
    }
    checks.push(devicesReclaimedCheck(providers.devices));
  }
  checks.push(...providers.extra ?? []);
  return healthGate(checks);
}

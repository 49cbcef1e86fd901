/**
 * Errors of the fleet layer.
 *
 * @module
 */

import { AgentError, type AgentErrorOptions } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";

/** Something about the fleet's slots went wrong; the message says what to do. */
export class FleetError extends AgentError {
  override name = "FleetError";
}

/** Details of a backend's failed answer. */
export interface BackendFailure {
  /** The endpoint or URL asked. */
  endpoint?: string;
  /** The HTTP status, when there was an answer. */
  status?: number;
  /** The error kind the server named (FleetLock `kind`, etcd gRPC code name). */
  kind?: string;
  /**
   * Whether trying again may help (the default): false for answers that stay the
   * same until the configuration changes (wrong password, no permission, not etcd).
   */
  retryable?: boolean;
}

/** A backend could not be reached, timed out, or answered with an error. */
export class FleetBackendError extends FleetError {
  override name = "FleetBackendError";
  readonly endpoint?: string;
  readonly status?: number;
  readonly kind?: string;
  /** Whether trying again may help. */
  readonly retryable: boolean;

  constructor(message: string, failure: BackendFailure = {}, options: AgentErrorOptions = {}) {
    super(message, options);
    this.retryable = failure.retryable ?? true;
    if (failure.endpoint !== undefined) this.endpoint = failure.endpoint;
    if (failure.status !== undefined) this.status = failure.status;
    if (failure.kind !== undefined) this.kind = failure.kind;
  }
}

/** Waiting for a maintenance window and a slot took longer than `fleet.wait_timeout`. */
export class FleetTimeoutError extends FleetError {
  override name = "FleetTimeoutError";

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.Timeout });
  }
}

/**
 * The slot was lost while the update could still be undone: its lease expired
 * (the agent could not reach etcd in time) or an operator released it. The update
 * must not go on; roll back.
 */
export class FleetSlotLostError extends FleetError {
  override name = "FleetSlotLostError";
}

/**
 * This host still keeps a slot from an update that failed; no new update starts
 * until an operator has looked and freed it with `liveupdate-agent fleet release`.
 */
export class FleetSlotKeptError extends FleetError {
  override name = "FleetSlotKeptError";

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.Refused });
  }
}

/** This host's fleet id could not be determined (machine id missing or malformed). */
export class FleetIdentityError extends FleetError {
  override name = "FleetIdentityError";
}

/**
 * JSON over HTTP(S) for the fleet backends, with `fetch`: one HTTP client per
 * backend (its TLS settings and connection pool, closed with the backend), a
 * timeout per request, and errors that name the endpoint and say what to do.
 * Needs `--allow-net` for the endpoint and read permission on the TLS files.
 *
 * @module
 */

import type { FileSystem } from "../host/mod.ts";
import { FleetBackendError, FleetError } from "./fleet_error.ts";

/** TLS settings as the configuration holds them ("" = not set). */
export interface TlsFiles {
  readonly ca_file: string;
  readonly cert_file: string;
  readonly key_file: string;
}

async function readPem(fs: FileSystem, file: string, key: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readTextFile(file);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : error instanceof Deno.errors.NotCapable
      ? "the agent may not read it (keep fleet TLS files under /etc/liveupdate/)"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new FleetError(`Cannot read ${key} "${file}": ${why}. Fix the file or the setting.`, {
      cause: error,
    });
  }
  if (!text.includes("-----BEGIN ")) {
    throw new FleetError(
      `The ${key} "${file}" is not PEM (no "-----BEGIN" line). Convert it to PEM.`,
    );
  }
  return text;
}

/**
 * Creates the HTTP client of one backend from its TLS settings (`what` names the
 * settings' section in messages, such as "fleet.etcd"). Close it with the backend.
 */
export async function createHttpClient(
  fs: FileSystem,
  tls: TlsFiles,
  what: string,
): Promise<Deno.HttpClient> {
  const options: Deno.CreateHttpClientOptions = {};
  if (tls.ca_file !== "") options.caCerts = [await readPem(fs, tls.ca_file, `${what}.ca_file`)];
  let pair: Deno.TlsCertifiedKeyPem | undefined;
  if (tls.cert_file !== "") {
    pair = {
      cert: await readPem(fs, tls.cert_file, `${what}.cert_file`),
      key: await readPem(fs, tls.key_file, `${what}.key_file`),
    };
  }
  try {
    return Deno.createHttpClient(pair ? { ...options, ...pair } : options);
  } catch (error) {
    throw new FleetError(
      `The TLS files of ${what} are not usable: ${(error as Error).message}. Check that ` +
        "cert_file and key_file belong together and hold one certificate chain and its key.",
      { cause: error },
    );
  }
}

/** An answer of a JSON endpoint. */
export interface JsonAnswer {
  status: number;
  /** The parsed body, or undefined when the body was empty or not JSON. */
  body: unknown;
  /** The raw body, shortened, for messages. */
  text: string;
}

/** Options of {@link postJson}. */
export interface PostOptions {
  client: Deno.HttpClient;
  timeoutMs: number;
  headers?: Record<string, string>;
  /** Aborting cancels the request; the call then rejects with the signal's reason. */
  signal?: AbortSignal;
}

function describeFetchError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const inner = error instanceof Error && error.cause instanceof Error ? error.cause.message : "";
  const detail = inner && !message.includes(inner) ? `${message}: ${inner}` : message;
  return detail.replace(/\s+/g, " ").trim();
}

/**
 * POSTs `body` as JSON to `url` and reads the answer within `timeoutMs`. Throws
 * {@link FleetBackendError} when the endpoint cannot be reached or does not answer
 * in time, and {@link FleetError} when the agent lacks network permission for it.
 */
export async function postJson(
  url: string,
  body: unknown,
  options: PostOptions,
): Promise<JsonAnswer> {
  const origin = new URL(url).origin;
  options.signal?.throwIfAborted();
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeoutMs);
  const onAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const response = await fetch(url, {
      method: "POST",
      client: options.client,
      headers: { "content-type": "application/json", ...options.headers },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, body: parsed, text: text.slice(0, 300) };
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (timedOut) {
      throw new FleetBackendError(
        `${origin} did not answer within ${options.timeoutMs} ms.`,
        { endpoint: origin, kind: "timeout" },
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new FleetError(
        `The agent has no network permission for ${origin}. The binary was built with a ` +
          "restricted --allow-net: rebuild it with this endpoint (deno task compile " +
          `--net-host=${new URL(url).host}) or use the default build.`,
        { cause: error },
      );
    }
    throw new FleetBackendError(
      `Cannot reach ${origin}: ${describeFetchError(error)}.`,
      { endpoint: origin, kind: "unreachable" },
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

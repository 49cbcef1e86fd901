/**
 * Checks of the `[fleet]` keys that need more than one key at a time: the chosen
 * backend is reachable (endpoints or URL set), TLS and credential keys come in
 * pairs, and window settings are not set without days.
 *
 * @module
 */

import type { ConfigProblem } from "./config_error.ts";
import type { Config } from "./schema.ts";

function fileOf(origins: Map<string, string>, ...keys: string[]): string {
  for (const key of keys) {
    const file = origins.get(key);
    if (file !== undefined) return file;
  }
  return "(defaults)";
}

function problem(
  origins: Map<string, string>,
  key: string,
  related: string[],
  text: string,
): ConfigProblem {
  const file = fileOf(origins, key, ...related);
  return { file, key, message: `Config file "${file}": ${text}` };
}

function pair(
  origins: Map<string, string>,
  problems: ConfigProblem[],
  section: string,
  values: Readonly<Record<string, unknown>>,
  first: string,
  second: string,
): void {
  const a = values[first] !== "";
  const b = values[second] !== "";
  if (a === b) return;
  const [set, missing] = a ? [first, second] : [second, first];
  problems.push(problem(
    origins,
    `${section}.${missing}`,
    [`${section}.${set}`],
    `key "${section}.${set}" is set but "${section}.${missing}" is not. Set both or neither.`,
  ));
}

/** The problems of the merged `[fleet]` section; an empty list when it is consistent. */
export function fleetProblems(config: Config, origins: Map<string, string>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const { fleet } = config;
  if (fleet.backend === "etcd" && fleet.etcd.endpoints.length === 0) {
    problems.push(problem(
      origins,
      "fleet.etcd.endpoints",
      ["fleet.backend"],
      'key "fleet.backend" is "etcd" but "fleet.etcd.endpoints" lists no endpoint. List the ' +
        'client URLs of the etcd members, such as endpoints = ["https://10.0.0.1:2379"].',
    ));
  }
  if (fleet.backend === "fleetlock" && fleet.fleetlock.url === "") {
    problems.push(problem(
      origins,
      "fleet.fleetlock.url",
      ["fleet.backend"],
      'key "fleet.backend" is "fleetlock" but "fleet.fleetlock.url" is not set. Set it to the ' +
        'server\'s base URL, such as "https://airlock.example:3333".',
    ));
  }
  pair(origins, problems, "fleet.etcd", fleet.etcd, "cert_file", "key_file");
  pair(origins, problems, "fleet.etcd", fleet.etcd, "username", "password_file");
  pair(origins, problems, "fleet.fleetlock", fleet.fleetlock, "cert_file", "key_file");
  if (fleet.window.days.length === 0) {
    // A file that itself says days = [] knows there is no window (the shipped
    // defaults list every key); a window setting from any other file is a mistake.
    const daysFile = origins.get("fleet.window.days");
    const stray = ["start", "length", "time_zone"].find((key) => {
      const file = origins.get(`fleet.window.${key}`);
      return file !== undefined && file !== daysFile;
    });
    if (stray !== undefined) {
      problems.push(problem(
        origins,
        `fleet.window.${stray}`,
        [],
        `key "fleet.window.${stray}" is set but "fleet.window.days" lists no day, so there is ` +
          'no window and updates may start any time. List the days, such as days = ["sat"], ' +
          "or remove the key.",
      ));
    }
  }
  return problems;
}

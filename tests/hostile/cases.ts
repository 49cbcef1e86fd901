/**
 * The hostile-input corpus: every table, in the order the test runs them.
 *
 * @module
 */

import type { CaseTable } from "./_case.ts";
import { CLI_CASES } from "./cli_cases.ts";
import { CONFIG_CASES } from "./config_cases.ts";
import { FDT_CASES } from "./fdt_cases.ts";
import { RECORD_CASES } from "./record_cases.ts";
import { SYMLINK_CASES } from "./symlink_cases.ts";
import { SYSFS_CASES } from "./sysfs_cases.ts";
import { UDEV_CASES } from "./udev_cases.ts";

/** Every category's table. */
export const ALL_TABLES: readonly CaseTable[] = [
  CONFIG_CASES,
  SYSFS_CASES,
  UDEV_CASES,
  RECORD_CASES,
  FDT_CASES,
  CLI_CASES,
  SYMLINK_CASES,
];

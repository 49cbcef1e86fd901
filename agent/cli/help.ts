/**
 * Help texts, generated from the command and option definitions.
 *
 * @module
 */

import { EXIT_CODE_DOCS } from "../exit_codes.ts";
import type { Command, OptionSpec } from "./command.ts";
import { GLOBAL_OPTIONS } from "./global_options.ts";

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const short = spec.short ? `-${spec.short}, ` : "    ";
    const value = spec.type === "string" ? `=${spec.value ?? "VALUE"}` : "";
    return [`  ${short}--${name}${value}`, spec.description] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => left.padEnd(width) + right);
}

/** The top-level help: what the agent is, its commands, global options, exit codes. */
export function mainHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((command) => command.name.length)) + 4;
  return [
    "Usage: liveupdate-agent [OPTIONS] COMMAND [COMMAND OPTIONS]",
    "",
    "Drives the kernel's Live Update Orchestrator: prepares the running kernel, stops and",
    "starts services per update phase, preserves the devices chosen by udev rules,",
    "kexecs into the target kernel and finishes the update after the reboot.",
    "",
    "Commands:",
    ...commands.map((command) => `  ${command.name.padEnd(width)}${command.summary}`),
    "",
    "Options:",
    ...optionLines(GLOBAL_OPTIONS),
    "",
    "Exit codes:",
    ...EXIT_CODE_DOCS.map((doc) => `  ${String(doc.code).padEnd(4)}${doc.meaning}`),
    "",
    "Run 'liveupdate-agent COMMAND --help' for a command's options.",
    "",
  ].join("\n");
}

/** The help of one command. */
export function commandHelp(command: Command): string {
  const positionals = (command.positionals ?? []).map((name) => ` [${name}]`).join("");
  const lines = [
    `Usage: liveupdate-agent ${command.name} [OPTIONS]${positionals}`,
    "",
    command.summary,
    "",
    command.description,
    "",
  ];
  if (Object.keys(command.options).length > 0) {
    lines.push("Options:", ...optionLines(command.options), "");
  }
  lines.push("Global options:", ...optionLines(GLOBAL_OPTIONS), "");
  return lines.join("\n");
}

/** The exit codes as a Markdown table, for the README. */
export function exitCodeTable(): string {
  const rows = EXIT_CODE_DOCS.map((doc) => `| ${doc.code} | ${doc.name} | ${doc.meaning} |`);
  return ["| code | name | meaning |", "| --- | --- | --- |", ...rows].join("\n") + "\n";
}

/** A command's usage in one line: `wait [--for=finished|normal] [--timeout=DURATION] [--json]`. */
export function commandUsage(command: Command): string {
  const positionals = (command.positionals ?? []).map((name) => ` [${name}]`).join("");
  const options = Object.entries(command.options).map(([name, spec]) =>
    spec.type === "string" ? ` [--${name}=${spec.value ?? "VALUE"}]` : ` [--${name}]`
  ).join("");
  return `${command.name}${positionals}${options}`;
}

/** The commands as a Markdown table, for the README. */
export function commandTable(commands: readonly Command[]): string {
  const rows = commands.map((command) =>
    `| \`${commandUsage(command).replaceAll("|", "\\|")}\` | ${command.summary} |`
  );
  return ["| command | what it does |", "| --- | --- |", ...rows].join("\n") + "\n";
}

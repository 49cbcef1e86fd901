/**
 * Hostile command lines: unknown commands and options, bad values, huge and
 * control-character arguments, `--config-root` at files, FIFOs and devices.
 * Usage errors exit 2 with the offending word and a pointer to `--help`;
 * configuration roots that are not directories exit 3. (A NUL cannot reach the
 * agent in an argument: execve(2) ends every argument at the first NUL; one
 * argument is at most 128 KiB.)
 *
 * @module
 */

import { type CaseTable, EXIT, type HostileCase, plant, plantFifo } from "./_case.ts";

/** A command line refused as a usage error, saying `says`. */
function usage(name: string, argv: string[], says: RegExp): HostileCase {
  return { name, argv, code: EXIT.usage, stderr: says };
}

const help = /Run 'liveupdate-agent( \w+)? --help'/;

/** The command-line cases. */
export const CLI_CASES: CaseTable = {
  category: "cli",
  cases: [
    usage("an unknown command", ["frobnicate"], /Unknown command 'frobnicate'/),
    usage("a misspelt command", ["stauts"], /Unknown command 'stauts'\. Did you mean 'status'\?/),
    usage("an unknown global option", ["--frob", "status"], /Unknown option '--frob'/),
    usage(
      "an unknown command option",
      ["status", "--frob"],
      /Unknown option '--frob' for 'liveupdate-agent status'/,
    ),
    usage("a misspelt command option", ["prepare", "--no-kexek"], /Did you mean '--no-kexec'\?/),
    usage("an unknown short option", ["status", "-x"], /Unknown option '-x'/),
    usage(
      "a bad log level",
      ["status", "--log-level=loud"],
      /'--log-level' is "loud" but must be one of/,
    ),
    usage("a bad log format", ["--log-format=xml", "status"], /'--log-format' is "xml"/),
    usage(
      "a value for a boolean option",
      ["status", "--json=yes"],
      /--json.*does not take an argument|json/,
    ),
    {
      ...usage("an empty config root", ["status", "--config-root="], /'--config-root' needs a/),
      configRoot: false,
    },
    usage(
      "a config root without its value",
      ["status", "--config-root"],
      /config-root.*argument missing|config-root/,
    ),
    usage(
      "too many arguments",
      ["status", "extra"],
      /Unexpected argument 'extra'|Too many arguments/,
    ),
    usage(
      "fleet with too many arguments",
      ["fleet", "release", "a", "b"],
      /Too many arguments for 'liveupdate-agent fleet'/,
    ),
    usage("an unknown fleet action", ["fleet", "frobnicate"], /frobnicate/),
    usage("a control character as the command", ["\u0001"], /Unknown command/),
    usage("a newline in the command", ["status\n"], /Unknown command/),
    usage("an empty command", [""], /Unknown command ''/),
    usage("a non-ASCII command", ["stätus"], /Unknown command 'stätus'/),
    usage("an escape sequence as an option", ["status", "--\u001b[31m"], /Unknown option/),
    usage("a huge option name", ["status", `--${"x".repeat(100_000)}`], /Unknown option/),
    usage("a huge command", ["y".repeat(100_000)], /Unknown command/),
    usage("three dashes", ["---", "status"], /Unknown option|Unknown command|Unexpected/),
    usage("only options", ["--log-level=debug"], /Usage:/),
    {
      name: "a huge config root",
      argv: ["status", `--config-root=/${"z".repeat(100_000)}`],
      configRoot: false,
      code: EXIT.config,
      stderr: /config\.d/,
    },
    {
      name: "a config root that is a file",
      setup: (host) => plant(`${host.dir}/root-file`, "[log]\n"),
      argv: (host) => ["status", `--config-root=${host.dir}/root-file`],
      configRoot: false,
      code: EXIT.config,
      stderr: /Config directory ".*root-file\/usr\/lib\/liveupdate\/config\.d" is not a directory/,
    },
    {
      name: "a config root that is a FIFO",
      setup: (host) => plantFifo(`${host.dir}/root-fifo`),
      argv: (host) => ["status", `--config-root=${host.dir}/root-fifo`],
      configRoot: false,
      code: EXIT.config,
      stderr: /root-fifo\/usr\/lib\/liveupdate\/config\.d" is not a directory/,
      strace: true,
    },
    {
      name: "a config root that is /dev/null",
      argv: ["config", "--json", "--config-root=/dev/null"],
      configRoot: false,
      code: EXIT.config,
      stderr: /\/dev\/null\/usr\/lib\/liveupdate\/config\.d" is not a directory/,
    },
    {
      name: "a config root with a control character",
      argv: ["config", "--json", "--config-root=/nonexistent-\u0007-root"],
      configRoot: false,
      code: EXIT.ok,
      stdout: /"sources": \[\]/,
    },
    {
      name: "a relative config root",
      argv: ["config", "--json", "--config-root=root"],
      configRoot: false,
      code: EXIT.ok,
      stdout: /"sources": \[\s*".*50-host\.toml"/,
    },
    {
      name: "help for an unknown command",
      argv: ["frobnicate", "--help"],
      code: EXIT.usage,
      stderr: /Unknown command 'frobnicate'/,
    },
    {
      name: "the version with an unknown option",
      argv: ["--version", "--frob"],
      code: EXIT.usage,
      stderr: /Unknown option '--frob'/,
    },
    {
      name: "a changing command with a bad option changes nothing",
      argv: ["prepare", "--now-please"],
      code: EXIT.usage,
      stderr: help,
      strace: true,
    },
  ],
};

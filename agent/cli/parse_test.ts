import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { COMMANDS } from "./commands.ts";
import { parseCommandLine } from "./parse.ts";

function usage(argv: string[]): UsageError {
  try {
    parseCommandLine(argv, COMMANDS);
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected UsageError, got ${error}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  assert.fail(`accepted: ${argv.join(" ")}`);
}

Deno.test("global options are accepted before and after the command", () => {
  const before = parseCommandLine(["--config-root", "/r", "--log-level=debug", "status"], COMMANDS);
  assert.equal(before.command?.name, "status");
  assert.equal(before.global.configRoot, "/r");
  assert.equal(before.global.logLevel, "debug");
  const after = parseCommandLine(
    ["status", "--json", "--config-root=/r", "--log-format", "json"],
    COMMANDS,
  );
  assert.equal(after.command?.name, "status");
  assert.equal(after.args.values.json, true);
  assert.equal(after.global.configRoot, "/r");
  assert.equal(after.global.logFormat, "json");
});

Deno.test("no command: help and version flags, or nothing", () => {
  assert.equal(parseCommandLine(["--help"], COMMANDS).global.help, true);
  assert.equal(parseCommandLine(["-h"], COMMANDS).global.help, true);
  assert.equal(parseCommandLine(["--version"], COMMANDS).global.version, true);
  assert.equal(parseCommandLine([], COMMANDS).command, undefined);
  assert.equal(parseCommandLine(["config", "--help"], COMMANDS).global.help, true);
});

Deno.test("option parsing errors name the option and suggest a fix", () => {
  const cases: [string[], RegExp][] = [
    [["stauts"], /^Unknown command 'stauts'\. Did you mean 'status'\?/],
    [["frobnicate"], /^Unknown command 'frobnicate'\. Run 'liveupdate-agent --help'/],
    [
      ["status", "--jsn"],
      /^Unknown option '--jsn' for 'liveupdate-agent status'\. Did you mean '--json'\?/,
    ],
    [["--bogus"], /^Unknown option '--bogus' for 'liveupdate-agent'\./],
    [
      ["status", "--json=yes"],
      /^Option '--json' does not take an argument\. Run 'liveupdate-agent status --help'/,
    ],
    [["status", "--config-root"], /^Option '--config-root <value>' argument missing\./],
    [["status", "extra"], /^Unexpected argument 'extra' for 'liveupdate-agent status'\./],
    [
      ["status", "--log-level=loud"],
      /^Option '--log-level' is "loud" but must be one of debug, info/,
    ],
    [
      ["status", "--log-format=xml"],
      /^Option '--log-format' is "xml" but must be one of auto, text, journal, json\./,
    ],
    [["--config-root=", "status"], /^Option '--config-root' needs a directory/],
    [["config", "-x"], /^Unknown option '-x' for 'liveupdate-agent config'\./],
  ];
  for (const [argv, expected] of cases) {
    const error = usage(argv);
    assert.match(error.message, expected, argv.join(" "));
    assert.doesNotMatch(error.message, /\n/);
  }
});

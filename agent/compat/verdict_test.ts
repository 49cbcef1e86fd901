import assert from "node:assert/strict";
import { decideCompatibility, type VersionKnowledge } from "./verdict.ts";

const v = (major: number, minor: number): VersionKnowledge => ({
  version: { major, minor },
  from: "test",
});
const unknown: VersionKnowledge = { unknown: "no /usr/lib/modules/x/liveupdate-abi" };
const invalid: VersionKnowledge = { invalid: "metadata: /m/liveupdate-abi is malformed: junk" };

const TABLE: {
  name: string;
  running: VersionKnowledge;
  target: VersionKnowledge;
  allowUnknown?: boolean;
  outcome: string;
  allowed: boolean;
  override?: boolean;
  sentence: RegExp;
}[] = [
  {
    name: "equal",
    running: v(1, 0),
    target: v(1, 0),
    outcome: "compatible",
    allowed: true,
    sentence:
      /^Compatible: the target kernel's LUO ABI 1\.0 can take over .* 1\.0 \(same major version, minor 0 ≥ 0\)\.$/,
  },
  {
    name: "newer minor",
    running: v(1, 0),
    target: v(1, 3),
    outcome: "compatible",
    allowed: true,
    sentence: /^Compatible: .*ABI 1\.3 .* kernel's 1\.0 \(same major version, minor 3 ≥ 0\)\.$/,
  },
  {
    name: "older minor",
    running: v(1, 2),
    target: v(1, 1),
    outcome: "incompatible",
    allowed: false,
    sentence:
      /^Refused: the target kernel's LUO ABI 1\.1 is older than the running kernel's 1\.2 \(minor 1 < 2\), so the new kernel would panic at boot/,
  },
  {
    name: "older minor, even with allow_unknown",
    running: v(1, 2),
    target: v(1, 1),
    allowUnknown: true,
    outcome: "incompatible",
    allowed: false,
    sentence: /^Refused: .* older than/,
  },
  {
    name: "newer major",
    running: v(1, 0),
    target: v(2, 0),
    outcome: "incompatible",
    allowed: false,
    sentence:
      /^Refused: the target kernel's LUO ABI 2\.0 has another major version than the running kernel's 1\.0, so the new kernel would panic at boot \("Orchestrator version mismatch"\)\.$/,
  },
  {
    name: "older major with a newer minor",
    running: v(2, 0),
    target: v(1, 9),
    outcome: "incompatible",
    allowed: false,
    sentence: /another major version/,
  },
  {
    name: "unknown target, refused",
    running: v(1, 0),
    target: unknown,
    outcome: "unknown",
    allowed: false,
    sentence:
      /^Refused: the target kernel's LUO ABI version is unknown \(no \/usr\/lib\/modules\/x\/liveupdate-abi\); ship .* set compat\.target_version, or set compat\.allow_unknown = true/,
  },
  {
    name: "unknown running, allowed by override",
    running: unknown,
    target: v(1, 0),
    allowUnknown: true,
    outcome: "unknown",
    allowed: true,
    override: true,
    sentence:
      /^Allowed only by compat\.allow_unknown: the running kernel's LUO ABI version is unknown/,
  },
  {
    name: "both unknown",
    running: unknown,
    target: unknown,
    outcome: "unknown",
    allowed: false,
    sentence: /both kernels are unknown .* set compat\.running_version and compat\.target_version/,
  },
  {
    name: "malformed metadata",
    running: v(1, 0),
    target: invalid,
    outcome: "invalid",
    allowed: false,
    sentence:
      /^Refused: the target kernel's metadata: \/m\/liveupdate-abi is malformed: junk; fix it or set compat\.target_version\.$/,
  },
  {
    name: "malformed metadata is not excused by allow_unknown",
    running: invalid,
    target: unknown,
    allowUnknown: true,
    outcome: "invalid",
    allowed: false,
    sentence: /^Refused: the running kernel's metadata/,
  },
];

for (const row of TABLE) {
  Deno.test(`verdict: ${row.name}`, () => {
    const verdict = decideCompatibility(row.running, row.target, row.allowUnknown ?? false);
    assert.equal(verdict.outcome, row.outcome);
    assert.equal(verdict.allowed, row.allowed);
    assert.equal(verdict.override, row.override ?? false);
    assert.match(verdict.sentence, row.sentence);
    // One sentence: a single final full stop, no line breaks.
    assert.doesNotMatch(verdict.sentence, /\n/);
    assert.match(verdict.sentence, /\.$/);
  });
}

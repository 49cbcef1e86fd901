/**
 * A strict reader of the Prometheus text exposition format (0.0.4) for tests: every
 * sample belongs to a family declared before it with `# HELP` and `# TYPE`, each
 * family once and its samples together, names and labels well-formed, values
 * numbers, no series twice, the file ends with a newline.
 *
 * @module
 */

/** A parsed metrics file. */
export interface MetricsText {
  /** Family name → type. */
  types: Map<string, string>;
  /** Family name → help text. */
  help: Map<string, string>;
  /** Series (`name{labels}` exactly as written) → value. */
  samples: Map<string, number>;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE = new RegExp(
  `^(${NAME})(\\{(?:${LABEL})(?:,${LABEL})*\\})? (NaN|[+-]Inf|-?\\d+(?:\\.\\d+)?(?:e[+-]?\\d+)?)$`,
);

/** Parses `text`; throws naming the line for anything not in the format. */
export function parseMetricsText(text: string): MetricsText {
  if (!text.endsWith("\n")) throw new Error("The metrics file does not end with a newline");
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples = new Map<string, number>();
  let current = "";
  const closed = new Set<string>();
  text.slice(0, -1).split("\n").forEach((line, index) => {
    const where = `line ${index + 1} (${JSON.stringify(line)})`;
    let match;
    if ((match = new RegExp(`^# HELP (${NAME}) (.+)$`).exec(line))) {
      if (help.has(match[1]!)) throw new Error(`${where}: HELP of ${match[1]} twice`);
      if (current) closed.add(current);
      current = match[1]!;
      help.set(current, match[2]!);
      return;
    }
    if ((match = new RegExp(`^# TYPE (${NAME}) (gauge|counter|untyped)$`).exec(line))) {
      if (match[1] !== current) throw new Error(`${where}: TYPE without its HELP line first`);
      if (types.has(current)) throw new Error(`${where}: TYPE of ${current} twice`);
      types.set(current, match[2]!);
      return;
    }
    match = SAMPLE.exec(line);
    if (!match) throw new Error(`${where}: not a sample line`);
    const name = match[1]!;
    if (!types.has(name)) throw new Error(`${where}: sample of an undeclared family`);
    if (name !== current || closed.has(name)) {
      throw new Error(`${where}: a sample away from its family's other samples`);
    }
    const series = `${name}${match[2] ?? ""}`;
    if (samples.has(series)) throw new Error(`${where}: series ${series} twice`);
    samples.set(series, Number(match[3]));
  });
  return { types, help, samples };
}

/**
 * A tiny writer of the Prometheus text exposition format (version 0.0.4), enough
 * for gauges with labels.
 *
 * @module
 */

/** Label names to values. */
export type Labels = Readonly<Record<string, string>>;

/** One sample of a metric. */
export interface Sample {
  labels?: Labels;
  value: number;
}

/** A metric family: name, help, type and samples. */
export interface Metric {
  name: string;
  help: string;
  type: "gauge" | "counter";
  samples: Sample[];
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Renders metric families in the text format; families without samples are left out. */
export function renderMetrics(metrics: readonly Metric[]): string {
  const lines: string[] = [];
  for (const metric of metrics) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(metric.name)) {
      throw new RangeError(`Metric name "${metric.name}" is not valid`);
    }
    if (metric.samples.length === 0) continue;
    lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`);
    lines.push(`# TYPE ${metric.name} ${metric.type}`);
    for (const sample of metric.samples) {
      const labels = Object.entries(sample.labels ?? {});
      const text = labels.length === 0
        ? ""
        : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
      lines.push(`${metric.name}${text} ${formatValue(sample.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

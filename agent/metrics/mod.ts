/**
 * Prometheus metrics for node_exporter's textfile collector.
 *
 * @module
 */

export * from "./prometheus.ts";
export * from "./update_metrics.ts";
export * from "./collect.ts";
export * from "./write.ts";

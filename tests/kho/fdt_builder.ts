/**
 * Flattened device tree blobs for tests: re-exported from the rehearsal
 * (`agent/rehearsal/fdt_builder.ts`), which hands over its KHO tree the same way.
 *
 * @module
 */

export * from "../../agent/rehearsal/fdt_builder.ts";

/**
 * Fake x86 boot images for tests: re-exported from the rehearsal
 * (`agent/rehearsal/boot_image.ts`), which builds its target kernel the same way.
 *
 * @module
 */

export * from "../../agent/rehearsal/boot_image.ts";

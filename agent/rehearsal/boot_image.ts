/**
 * Builds the start of an x86 boot image (bzImage) for the rehearsal's target
 * kernel and for tests: the setup header with its "HdrS" magic and the pointer at
 * 0x20E to the kernel version string — what the agent reads to learn a target
 * image's release. Nothing boots from it (the rehearsal's kexec is simulated).
 *
 * @module
 */

/** Options of {@link fakeBzImage}. */
export interface FakeBzImageOptions {
  /** The setup header's version string ("6.14.0-lu1 (builder@host) #1 SMP …"). */
  version?: string;
  /** Boot protocol version (0x020f by default). */
  protocol?: number;
  /** Setup sectors (the string must lie inside them; 7 by default). */
  setupSectors?: number;
  /** The value stored at 0x20E (defaults to where the string is put). */
  pointer?: number;
  /** Total size (the rest stands in for the compressed kernel). */
  size?: number;
}

/** The first bytes of a bzImage whose header says `options.version`. */
export function fakeBzImage(options: FakeBzImageOptions = {}): Uint8Array {
  const setupSectors = options.setupSectors ?? 7;
  const image = new Uint8Array(options.size ?? 0x3000);
  const view = new DataView(image.buffer);
  image[0x1f1] = setupSectors;
  view.setUint16(0x1fe, 0xaa55, true);
  image.set([0x48, 0x64, 0x72, 0x53], 0x202); // "HdrS"
  view.setUint16(0x206, options.protocol ?? 0x020f, true);
  const stringAt = 0x3c0;
  view.setUint16(0x20e, options.pointer ?? stringAt, true);
  if (options.version !== undefined) {
    image.set(new TextEncoder().encode(options.version + "\0"), 0x200 + stringAt);
  }
  for (let i = (setupSectors + 1) * 512; i < image.length; i++) image[i] = (i * 7) & 0xff;
  return image;
}

import { createHash } from 'node:crypto';

/**
 * A deterministic "random" in [0, 1) for one retry: every redelivery of the same outcome computes
 * the same jittered delay, so the due time of a retry does not move each time it is looked at.
 */
export function seededRandom(...parts: (string | number)[]): () => number {
  const digest = createHash('sha256').update(parts.join('|')).digest();
  return () => digest.readUInt32BE(0) / 2 ** 32;
}

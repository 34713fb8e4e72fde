import { createHash } from 'node:crypto';

/**
 * The longest `dedupe.windowMs` a job type may declare (30 days): a dedupe record is kept in Redis
 * per distinct payload for the whole window.
 */
export const MAX_DEDUPE_WINDOW_MS = 30 * 86_400_000;

/** Output pieces that are already text (a container's brackets, a key and its colon). */
class Chunk {
  constructor(readonly text: string) {}
}

/**
 * The canonical JSON text of a JSON value (RFC 8785 JCS for the values JSON.parse yields): object
 * keys sorted by UTF-16 code units at every level, no whitespace, strings and numbers as
 * JSON.stringify writes them (so `1`, `1.0` and `1e0` are the same number, as JSON.parse already
 * makes them; `-0` is `0`). Iterative, so no depth of nesting can overflow the stack. Not JSON
 * (undefined, functions, symbols) reads as `null`, as in an array.
 */
export function canonicalJsonText(value: unknown): string {
  const out: string[] = [];
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (item instanceof Chunk) {
      out.push(item.text);
    } else if (Array.isArray(item)) {
      out.push('[');
      stack.push(new Chunk(']'));
      for (let i = item.length - 1; i >= 0; i -= 1) {
        stack.push(item[i]);
        if (i > 0) stack.push(new Chunk(','));
      }
    } else if (item !== null && typeof item === 'object') {
      const record = item as Record<string, unknown>;
      const keys = Object.keys(record)
        .filter((k) => jsonValue(record[k]))
        .sort();
      out.push('{');
      stack.push(new Chunk('}'));
      for (let i = keys.length - 1; i >= 0; i -= 1) {
        const k = keys[i]!;
        stack.push(record[k]);
        stack.push(new Chunk(`${i > 0 ? ',' : ''}${JSON.stringify(k)}:`));
      }
    } else {
      out.push(jsonValue(item) ? JSON.stringify(item) : 'null');
    }
  }
  return out.join('');
}

/** Whether JSON.stringify keeps an object member with this value. */
function jsonValue(v: unknown): boolean {
  return v !== undefined && typeof v !== 'function' && typeof v !== 'symbol';
}

/**
 * A job's payload dedupe key (CONTRACT §2 job type `dedupe: { by: "payload" }`): its job type and
 * the SHA-256 (base64url) of the payload's canonical JSON, so that two payloads that differ only in
 * key order or spacing have the same key. A job without a payload has its own key (the same for
 * every job of the type sent without one; not the key of `null`). The limiter scopes it per tenant,
 * in a key space of its own (no producer's `Idempotency-Key` can collide with it).
 */
export function payloadDedupeKey(jobType: string, payload: unknown): string {
  const text = payload === undefined ? '' : canonicalJsonText(payload);
  return `${jobType}:${createHash('sha256').update(text).digest('base64url')}`;
}

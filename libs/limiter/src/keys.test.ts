import { describe, expect, it } from 'vitest';
import { Keys } from './keys.js';

describe('Keys.idempotency', () => {
  const keys = new Keys('janus');

  it("keeps producers' keys and retry keys in separate key spaces", () => {
    const key = 'retry:01ARZ3NDEKTSV4RRFFQ69G5FAV.2';
    expect(keys.idempotency('acme', key)).toBe(keys.idempotency('acme', key, 'producer'));
    expect(keys.idempotency('acme', key, 'retry')).not.toBe(keys.idempotency('acme', key, 'producer'));
    expect(keys.idempotency('acme', key, 'retry').startsWith(`${keys.prefix}retry-idem:acme:`)).toBe(true);
    expect(keys.idempotency('acme', key).startsWith(`${keys.prefix}idem:acme:`)).toBe(true);
  });

  it('keeps payload dedupe keys in a key space of their own', () => {
    const key = 'report:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU';
    expect(keys.idempotency('acme', key, 'dedupe').startsWith(`${keys.prefix}dedupe:acme:`)).toBe(true);
    expect(new Set([keys.idempotency('acme', key, 'dedupe'), keys.idempotency('acme', key), keys.idempotency('acme', key, 'retry')]).size).toBe(3);
  });
});

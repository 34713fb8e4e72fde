import { describe, expect, it } from 'vitest';
import { decodeRetryContext, encodeRetryContext } from './retry-context.js';

describe('retry context', () => {
  const ctx = { tenant: 'acme', type: 'email', priority: 'high' as const, cost: 3, createdAt: '2026-11-23T10:00:00.000Z' };
  const payload = { to: 'ü@example.com', list: [1, null, { deep: 'x"y' }] };

  it('round-trips, with the payload given as an object or as JSON text serialized once', () => {
    const fromObject = encodeRetryContext({ ...ctx, payload });
    const fromText = encodeRetryContext(ctx, JSON.stringify(payload));
    expect(decodeRetryContext(fromObject)).toEqual({ ...ctx, payload });
    expect(decodeRetryContext(fromText)).toEqual({ ...ctx, payload });
    expect(decodeRetryContext(encodeRetryContext(ctx))).toEqual(ctx);
  });

  it('refuses a payload given twice (a programming error)', () => {
    expect(() => encodeRetryContext({ ...ctx, payload }, '{}')).toThrow(/twice/);
  });

  it('decodes garbage to undefined', () => {
    expect(decodeRetryContext('{"tenant":1}')).toBeUndefined();
    expect(decodeRetryContext('not json')).toBeUndefined();
    expect(decodeRetryContext('')).toBeUndefined();
  });
});

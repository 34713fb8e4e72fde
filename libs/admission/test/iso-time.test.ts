import { describe, expect, it } from 'vitest';
import { IsoTime } from '../src/index.js';

describe('IsoTime', () => {
  it('formats like Date#toISOString, also when the millisecond changes back and forth', () => {
    const t = new IsoTime();
    const base = Date.UTC(2026, 10, 23, 12, 0, 0, 999);
    for (const ms of [base, base, base + 1, base, 0, base + 86_400_000]) expect(t.of(ms)).toBe(new Date(ms).toISOString());
  });
});

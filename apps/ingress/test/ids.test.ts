import { describe, expect, it } from 'vitest';
import { isJobId, newJobId } from '../src/ids.js';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const timeOf = (id: string): number => [...id.slice(0, 10)].reduce((t, ch) => t * 32 + CROCKFORD.indexOf(ch), 0);

describe('newJobId', () => {
  it('is 26 Crockford characters whose first 10 encode the millisecond, also when ms go back and forth', () => {
    const base = Date.UTC(2026, 10, 23, 12, 0, 0, 0);
    for (const ms of [base, base, base + 1, base, 0, 2 ** 48 - 1, base + 37]) {
      const id = newJobId(ms);
      expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(timeOf(id)).toBe(ms);
    }
  });

  it('sorts by creation time as text and does not repeat', () => {
    const ids = Array.from({ length: 100_000 }, (_, i) => newJobId(1_700_000_000_000 + Math.floor(i / 50)));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([...ids].sort((a, b) => timeOf(a) - timeOf(b) || (a < b ? -1 : a > b ? 1 : 0)));
  });
});

describe('isJobId', () => {
  it('accepts every id newJobId issues and nothing another shape', () => {
    for (let i = 0; i < 1_000; i++) expect(isJobId(newJobId(Math.floor(Math.random() * 2 ** 48)))).toBe(true);
    for (const text of ['', '\u0000', '01ARZ3NDEKTSV4RRFFQ69G5FA\u0000', '01arz3ndektsv4rrffq69g5fav', '01ARZ3NDEKTSV4RRFFQ69G5FA', '01ARZ3NDEKTSV4RRFFQ69G5FAVX', '01ARZ3NDEKTSV4RRFFQ69G5FAU', 'job-get-1']) {
      expect(isJobId(text), JSON.stringify(text)).toBe(false);
    }
  });
});

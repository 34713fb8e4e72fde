import { describe, expect, it } from 'vitest';
import { MAX_PAYLOAD_DEPTH, payloadProblem } from './payload.js';

const nested = (depth: number, leaf: unknown = 1): unknown => {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { k: v };
  return v;
};

describe('payloadProblem', () => {
  it('accepts scalars, and nesting up to the limit', () => {
    for (const v of [null, 1, 'text', true, [], {}, { a: [1, { b: 'x' }] }]) expect(payloadProblem(v)).toBeUndefined();
    expect(payloadProblem(nested(MAX_PAYLOAD_DEPTH))).toBeUndefined();
    expect(payloadProblem(nested(MAX_PAYLOAD_DEPTH + 1))).toBe(`nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  });

  it('finds a NUL in a string or a key, however deep, and in any element', () => {
    expect(payloadProblem(nested(10, 'a\0b'))).toBe('contains U+0000 (NUL) in a string');
    expect(payloadProblem([1, 2, { ok: 'x' }, ['y', 'z\0']])).toBe('contains U+0000 (NUL) in a string');
    expect(payloadProblem(JSON.parse('{"a":{"b\\u0000":1}}'))).toBe('contains U+0000 (NUL) in a key');
    expect(payloadProblem(JSON.parse('{"__proto__":{"x":"\\u0000"}}'))).toBe('contains U+0000 (NUL) in a string');
  });

  it('answers for any depth without recursion', () => {
    const deep = JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)) as unknown;
    expect(payloadProblem(deep)).toBe(`nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  });
});

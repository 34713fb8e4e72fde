import { describe, expect, it } from 'vitest';
import { canonicalJsonText, MAX_DEDUPE_WINDOW_MS, payloadDedupeKey, PolicyDocument, zodFieldErrors } from './index.js';

describe('canonicalJsonText', () => {
  it('sorts object keys at every level (by UTF-16 code units, integer-like keys too) and drops whitespace', () => {
    const a = JSON.parse('{ "b": [ { "z": 1, "a": null } , "x" ], "a": { "d": true, "c": "s" }, "10": 1, "2": 2 }') as unknown;
    expect(canonicalJsonText(a)).toBe('{"10":1,"2":2,"a":{"c":"s","d":true},"b":[{"a":null,"z":1},"x"]}');
  });

  it('writes strings and numbers as JSON.stringify does: 1, 1.0 and 1e0 are one number, -0 is 0', () => {
    const parse = (text: string) => canonicalJsonText(JSON.parse(text));
    expect(parse('1.0')).toBe('1');
    expect(parse('[1, 1.0, 1e0, -0, 0.1, 1e21, 123456789012345678901234567890]')).toBe('[1,1,1,0,0.1,1e+21,1.2345678901234568e+29]');
    expect(parse('"a\\u00e9\\n\\"\\ud83d\\ude00"')).toBe(JSON.stringify('aé\n"😀'));
    expect(parse('{"é":1,"e":2,"E":3,"":4}')).toBe('{"":4,"E":3,"e":2,"é":1}');
  });

  it('agrees with JSON.stringify for values whose keys are already sorted, and keeps array order', () => {
    for (const v of [null, true, false, 0, 'x', [], {}, [3, 1, 2], { a: [], b: {} }, [[[]]], { a: { b: { c: [1, { d: 'e' }] } } }]) {
      expect(canonicalJsonText(v)).toBe(JSON.stringify(v));
    }
    expect(canonicalJsonText([1, 2])).not.toBe(canonicalJsonText([2, 1]));
  });

  it('cannot overflow the stack, however deep the value', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 200_000; i += 1) deep = i % 2 === 0 ? [deep] : { k: deep };
    const text = canonicalJsonText(deep);
    expect(text.startsWith('{"k":[{"k":[')).toBe(true);
    expect(text.length).toBeGreaterThan(600_000);
  });

  it('writes a non-JSON member as JSON.stringify would (left out of objects, null elsewhere)', () => {
    expect(canonicalJsonText({ b: undefined, a: 1 })).toBe('{"a":1}');
    expect(canonicalJsonText([undefined])).toBe('[null]');
  });
});

describe('payloadDedupeKey', () => {
  it('is the same for payloads equal as canonical JSON, and differs by job type, by value, and for no payload', () => {
    const key = (type: string, text?: string) => payloadDedupeKey(type, text === undefined ? undefined : JSON.parse(text));
    expect(key('t', '{"a":1,"b":[1,2]}')).toBe(key('t', '{ "b": [1, 2.0], "a": 1 }'));
    expect(key('t', '{"a":1}')).toMatch(/^t:[A-Za-z0-9_-]{43}$/);
    expect(key('t', '{"a":1}')).not.toBe(key('u', '{"a":1}'));
    expect(key('t', '{"a":1}')).not.toBe(key('t', '{"a":"1"}'));
    expect(key('t', '[1,2]')).not.toBe(key('t', '[2,1]'));
    expect(key('t')).toBe(key('t'));
    expect(key('t')).not.toBe(key('t', 'null'));
  });
});

describe('job type dedupe', () => {
  const withDedupe = (dedupe: unknown) => ({ jobTypes: { mail: { dedupe } } });

  it('takes { by: "payload", windowMs } and is absent by default', () => {
    expect(PolicyDocument.parse(withDedupe({ by: 'payload', windowMs: 60_000 })).jobTypes.mail?.dedupe).toEqual({ by: 'payload', windowMs: 60_000 });
    expect(PolicyDocument.parse({ jobTypes: { mail: {} } }).jobTypes.mail?.dedupe).toBeUndefined();
    expect(PolicyDocument.parse(withDedupe({ by: 'payload', windowMs: MAX_DEDUPE_WINDOW_MS })).jobTypes.mail?.dedupe?.windowMs).toBe(MAX_DEDUPE_WINDOW_MS);
  });

  it('names the bad field: by other than "payload", windowMs missing, not an int ≥ 1 or over 30 days, unknown fields', () => {
    const paths = (dedupe: unknown) => {
      const result = PolicyDocument.safeParse(withDedupe(dedupe));
      expect(result.success).toBe(false);
      return zodFieldErrors(result.error?.issues ?? []).map((e) => e.path);
    };
    expect(paths({ by: 'key', windowMs: 1000 })).toEqual(['jobTypes.mail.dedupe.by']);
    expect(paths({ windowMs: 1000 })).toEqual(['jobTypes.mail.dedupe.by']);
    expect(paths({ by: 'payload' })).toEqual(['jobTypes.mail.dedupe.windowMs']);
    for (const windowMs of [0, -1, 1.5, '1000', MAX_DEDUPE_WINDOW_MS + 1]) expect(paths({ by: 'payload', windowMs })).toEqual(['jobTypes.mail.dedupe.windowMs']);
    expect(paths({ by: 'payload', windowMs: 1000, extra: 1 })).toEqual(['jobTypes.mail.dedupe.extra']);
    expect(paths(true)).toEqual(['jobTypes.mail.dedupe']);
  });
});

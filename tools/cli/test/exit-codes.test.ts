import { describe, expect, it } from 'vitest';
import { EXIT, exitForStatus } from '../src/io.js';

describe('exitForStatus', () => {
  it('a wrong key or token is exit 3, also once the address is locked out after 20 failures (429 too-many-auth-failures); a refusal is 1', () => {
    expect(exitForStatus(401)).toBe(EXIT.unavailable);
    expect(exitForStatus(403)).toBe(EXIT.unavailable);
    expect(exitForStatus(429, 'https://janus.dev/problems/too-many-auth-failures')).toBe(EXIT.unavailable);
    expect(exitForStatus(429)).toBe(EXIT.refused);
    expect(exitForStatus(429, 'https://janus.dev/problems/rate-limited')).toBe(EXIT.refused);
    expect(exitForStatus(404)).toBe(EXIT.refused);
    expect(exitForStatus(503)).toBe(EXIT.unavailable);
    expect(exitForStatus(200)).toBe(EXIT.unavailable);
  });
});

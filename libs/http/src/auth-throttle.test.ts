import { describe, expect, it } from 'vitest';
import { AuthFailureThrottle, bearerToken, refuseAuthentication, retryAfterSeconds } from './auth-throttle.js';

describe('AuthFailureThrottle', () => {
  it('blocks an address after maxFailures within the window, until the window ends; other addresses are counted apart', async () => {
    let now = 1_000;
    const throttle = new AuthFailureThrottle(3, 10_000, () => now);
    const unauthorized = () => new Response(null, { status: 401 });
    const statuses = Array.from({ length: 5 }, () => refuseAuthentication(throttle, 'a', 'admin token', unauthorized).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect(refuseAuthentication(throttle, 'b', 'admin token', unauthorized).status).toBe(401);

    now += 2_500;
    const blocked = refuseAuthentication(throttle, 'a', 'admin token', unauthorized);
    expect(blocked.headers.get('retry-after')).toBe('8'); // 7.5 s left, rounded up
    expect(blocked.headers.get('content-type')).toBe('application/problem+json');
    expect(await blocked.json()).toEqual({
      type: 'https://janus.dev/problems/too-many-auth-failures',
      title: 'Too many failed authentications',
      status: 429,
      detail: 'too many requests with a missing or invalid admin token from this address',
      errors: [],
    });
    // Blocked answers are not counted: the window still ends where it began.
    now += 7_500;
    expect(throttle.blockedFor('a')).toBe(0);
    expect(refuseAuthentication(throttle, 'a', 'admin token', unauthorized).status).toBe(401);
  });

  it('reads a bearer token, and rounds Retry-After up', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer \tabc  ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken(`Bearer ${'x'.repeat(1025)}`)).toBeUndefined();
    expect([retryAfterSeconds(1), retryAfterSeconds(1000), retryAfterSeconds(1001), retryAfterSeconds(-5)]).toEqual(['1', '1', '2', '0']);
  });
});

import type { Context } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { COMMON_PROBLEMS, problem } from './problem.js';

/**
 * Counts failed authentications per client address. After `maxFailures` within `windowMs`, further
 * requests from that address that do not carry a valid credential get 429 with Retry-After until
 * the window ends (valid credentials keep working, so one misconfigured client behind a NAT does not
 * lock out the rest; Janus's keys and tokens are long and random, so the throttle is about load, not
 * about making guessing feasible). Per process: each instance counts on its own.
 */
export class AuthFailureThrottle {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly maxFailures = 20,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until this client may try again, or 0 when it is not blocked. */
  blockedFor(client: string): number {
    const entry = this.failures.get(client);
    if (!entry) return 0;
    const left = entry.resetAt - this.now();
    if (left <= 0) {
      this.failures.delete(client);
      return 0;
    }
    return entry.count >= this.maxFailures ? left : 0;
  }

  fail(client: string): void {
    const now = this.now();
    const entry = this.failures.get(client);
    if (!entry || entry.resetAt <= now) {
      if (this.failures.size > 100_000) this.sweep(now);
      this.failures.set(client, { count: 1, resetAt: now + this.windowMs });
    } else entry.count += 1;
  }

  private sweep(now: number): void {
    for (const [k, v] of this.failures) if (v.resetAt <= now) this.failures.delete(k);
    if (this.failures.size > 100_000) this.failures.clear();
  }
}

/** The peer address of the request's socket (no proxy header is trusted). */
export function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'local'; // app.request() in tests has no socket
  }
}

/** `Authorization: Bearer <token>` → token, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer[ \t]+(\S{1,1024})\s*$/i.exec(header);
  return match?.[1];
}

/** Retry-After in whole seconds, rounded up (CONTRACT §3). */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(0, Math.ceil(ms / 1000)));
}

/**
 * The answer to a request whose credential is missing or wrong: 429 `too-many-auth-failures` with
 * Retry-After while its address is throttled (not counted again), else `unauthorized()` (the app's
 * 401), counted as a failure of that address. `credential` names what was expected, e.g. "API key".
 */
export function refuseAuthentication(throttle: AuthFailureThrottle, client: string, credential: string, unauthorized: () => Response): Response {
  const blocked = throttle.blockedFor(client);
  if (blocked > 0) {
    return problem(429, COMMON_PROBLEMS.tooManyAuthFailures, 'Too many failed authentications', {
      detail: `too many requests with a missing or invalid ${credential} from this address`,
      headers: { 'retry-after': retryAfterSeconds(blocked) },
    });
  }
  throttle.fail(client);
  return unauthorized();
}

import type { Context, MiddlewareHandler } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { CompiledPolicy } from '@janus/limiter';
import { requestHeader } from '@janus/http';
import { PROBLEM, problem, retryAfterSeconds } from './problem.js';

export interface KeyOwner {
  readonly tenant: string;
  readonly keyId: string;
}

/** Resolves a bearer API key to its tenant (`@janus/policy`'s ApiKeyCache, refreshed on every config event). */
export interface TenantKeys {
  lookup(bearerKey: string): KeyOwner | undefined;
}

/**
 * Counts failed authentications per client address. After `maxFailures` within `windowMs`, further
 * requests from that address that do not carry a valid key get 429 with Retry-After until the window
 * ends (valid keys keep working, so one misconfigured client behind a NAT does not lock out the rest;
 * keys carry 192 random bits, so the throttle is about load, not about making guessing feasible).
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

export type TenantVariables = { tenant: string; keyId: string };

/** An authentication failure: the answer to send (401, 403 or 429). */
export interface AuthRefusal {
  readonly response: Response;
}

export interface TenantAuth {
  /** The caller's key owner, or the answer for a missing, unknown or revoked key or an unconfigured tenant. */
  readonly authenticate: (c: Context) => KeyOwner | AuthRefusal;
  /** `authenticate` as middleware: sets the `tenant` and `keyId` variables. */
  readonly middleware: MiddlewareHandler<{ Variables: TenantVariables }>;
}

/**
 * Producer authentication. No key, unknown or revoked key → 401. A key whose tenant is not in the
 * running policy → 403 (`tenant-not-configured`): the key is genuine but the tenant may not submit.
 * The submit routes call `authenticate` directly (one middleware layer less on the hot path); the
 * other routes use the middleware.
 */
export function tenantAuth(opts: {
  keys: TenantKeys;
  throttle: AuthFailureThrottle;
  policy: () => CompiledPolicy | undefined;
  clientAddress?: (c: Context) => string;
}): TenantAuth {
  const addressOf = opts.clientAddress ?? clientAddress;
  const authenticate = (c: Context): KeyOwner | AuthRefusal => {
    const token = bearerToken(requestHeader(c, 'authorization'));
    const owner = token === undefined ? undefined : opts.keys.lookup(token);
    if (!owner) {
      const client = addressOf(c);
      const blocked = opts.throttle.blockedFor(client);
      if (blocked > 0) {
        return {
          response: problem(429, PROBLEM.tooManyAuthFailures, 'Too many failed authentications', {
            detail: 'too many requests with a missing or invalid API key from this address',
            headers: { 'retry-after': retryAfterSeconds(blocked) },
          }),
        };
      }
      opts.throttle.fail(client);
      return {
        response: problem(401, PROBLEM.unauthorized, 'Unauthorized', {
          detail: token === undefined ? 'missing "Authorization: Bearer <api key>"' : 'unknown or revoked API key',
          headers: { 'www-authenticate': 'Bearer realm="janus"' },
        }),
      };
    }
    const policy = opts.policy();
    if (policy && !(owner.tenant in policy.document.tenants)) {
      return { response: problem(403, PROBLEM.forbidden, 'Tenant not configured', { detail: `tenant "${owner.tenant}" is not in the running policy` }) };
    }
    return owner;
  };
  const middleware: MiddlewareHandler<{ Variables: TenantVariables }> = async (c, next) => {
    const who = authenticate(c);
    if ('response' in who) return who.response;
    c.set('tenant', who.tenant);
    c.set('keyId', who.keyId);
    await next();
  };
  return { authenticate, middleware };
}

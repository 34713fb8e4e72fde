import type { Context, MiddlewareHandler } from 'hono';
import type { CompiledPolicy } from '@janus/limiter';
import { AuthFailureThrottle, bearerToken, clientAddress, refuseAuthentication, requestHeader } from '@janus/http';
import { PROBLEM, problem } from './problem.js';

export interface KeyOwner {
  readonly tenant: string;
  readonly keyId: string;
}

/** Resolves a bearer API key to its tenant (`@janus/policy`'s ApiKeyCache, refreshed on every config event). */
export interface TenantKeys {
  lookup(bearerKey: string): KeyOwner | undefined;
}

// The failed-authentication throttle is shared with policy-admin (@janus/http); re-exported for the routes.
export { AuthFailureThrottle, bearerToken, clientAddress } from '@janus/http';

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
      return {
        response: refuseAuthentication(opts.throttle, addressOf(c), 'API key', () =>
          problem(401, PROBLEM.unauthorized, 'Unauthorized', {
            detail: token === undefined ? 'missing "Authorization: Bearer <api key>"' : 'unknown or revoked API key',
            headers: { 'www-authenticate': 'Bearer realm="janus"' },
          }),
        ),
      };
    }
    const policy = opts.policy();
    if (policy && !Object.hasOwn(policy.document.tenants, owner.tenant)) {
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

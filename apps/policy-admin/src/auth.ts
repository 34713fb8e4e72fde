import type { Context, MiddlewareHandler } from 'hono';
import { AuthFailureThrottle, bearerToken, clientAddress, refuseAuthentication, requestHeader } from '@janus/http';
import { ENV_ADMIN_TOKEN_NAME, adminActor, secretsEqual, type AdminTokenOwner } from '@janus/policy';
import type { AdminMetrics } from './metrics.js';
import { PROBLEM, problem } from './problem.js';
import type { AdminEnv } from './routes/common.js';

/** The named admin tokens (`@janus/policy`'s AdminTokenCache, refreshed on every config event and poll). */
export interface NamedAdminTokens {
  lookup(bearerToken: string): AdminTokenOwner | undefined;
}

/** How often, at most, one instance writes a token's `lastUsedAt` (it is a hint, not an audit). */
export const LAST_USED_EVERY_MS = 60_000;

/**
 * `Authorization: Bearer <admin token>`: JANUS_ADMIN_TOKEN (named `env`, compared in constant time)
 * or an active named token (its SHA-256 looked up in the cache). The request's actor, for the audit
 * log, is `token:<name>`, never the token. A missing or wrong token is 401, and like ingress, an
 * address with 20 failures within 60 s gets 429 `too-many-auth-failures` with Retry-After until
 * the window ends; a valid token from that address still works.
 */
export function adminAuth(opts: {
  envToken: string;
  tokens: NamedAdminTokens;
  metrics: AdminMetrics;
  throttle?: AuthFailureThrottle;
  clientAddress?: (c: Context) => string;
  /** A named token was used (at most once per LAST_USED_EVERY_MS per token and instance). */
  used?: (owner: AdminTokenOwner) => void;
  now?: () => number;
}): MiddlewareHandler<AdminEnv> {
  const throttle = opts.throttle ?? new AuthFailureThrottle();
  const addressOf = opts.clientAddress ?? clientAddress;
  const now = opts.now ?? Date.now;
  const envActor = adminActor(ENV_ADMIN_TOKEN_NAME);
  const lastUsed = new Map<string, number>();
  return async (c, next) => {
    const token = bearerToken(requestHeader(c, 'authorization'));
    let actor: string | undefined;
    if (token !== undefined) {
      if (secretsEqual(token, opts.envToken)) actor = envActor;
      else {
        const owner = opts.tokens.lookup(token);
        if (owner) {
          actor = adminActor(owner.name);
          const t = now();
          if (opts.used && t - (lastUsed.get(owner.tokenId) ?? -Infinity) >= LAST_USED_EVERY_MS) {
            lastUsed.set(owner.tokenId, t);
            opts.used(owner);
          }
        }
      }
    }
    if (actor === undefined) {
      opts.metrics.authFailures.inc();
      return refuseAuthentication(throttle, addressOf(c), 'admin token', () =>
        problem(401, PROBLEM.unauthorized, 'Unauthorized', {
          detail: token === undefined ? 'send Authorization: Bearer <admin token>' : 'unknown or revoked admin token',
          headers: { 'www-authenticate': 'Bearer realm="janus-admin"' },
        }),
      );
    }
    c.set('actor', actor);
    await next();
  };
}

import type { MiddlewareHandler } from 'hono';
import { secretsEqual, tokenFingerprint } from '@janus/policy';
import type { AdminMetrics } from './metrics.js';
import { PROBLEM, problem } from './problem.js';
import type { AdminEnv } from './routes/common.js';

/**
 * `Authorization: Bearer <JANUS_ADMIN_TOKEN>`, compared in constant time. The request's actor
 * (for the audit log) is a short fingerprint of the token, never the token.
 */
export function adminAuth(adminToken: string, metrics: AdminMetrics): MiddlewareHandler<AdminEnv> {
  const actor = tokenFingerprint(adminToken);
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer[ \t]+(\S+)\s*$/i.exec(header);
    if (!m?.[1] || !secretsEqual(m[1], adminToken)) {
      metrics.authFailures.inc();
      return problem(401, PROBLEM.unauthorized, 'Unauthorized', {
        detail: m ? 'the admin token is not valid' : 'send Authorization: Bearer <JANUS_ADMIN_TOKEN>',
        headers: { 'www-authenticate': 'Bearer realm="janus-admin"' },
      });
    }
    c.set('actor', actor);
    await next();
  };
}

import { createRoute, z } from '@hono/zod-openapi';
import type { PolicyStore } from '@janus/policy';
import { ok, problems, security, subApp } from './common.js';

const AuditQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50).openapi({ description: '1–500, default 50' }),
  before: z.coerce.number().int().min(1).optional().openapi({ description: 'Page: entries with a smaller id' }),
});

/** `GET /v1/audit`: who (`token:<name>`, the admin token's name) changed what, when, from which version to which, newest first. */
export function auditRoutes(deps: { store: PolicyStore }) {
  const app = subApp();
  app.openapi(
    createRoute({ method: 'get', path: '/', tags: ['audit'], security, summary: 'The audit log, newest first', request: { query: AuditQuery }, responses: { ...ok('`{ entries: [{ id, at, actor, action, target, fromVersion, toVersion, diff }], next }`'), 400: problems[400], 401: problems[401] } }),
    async (c) => {
      const { limit, before } = c.req.valid('query');
      const rows = await deps.store.audit({ limit, ...(before !== undefined ? { before } : {}) });
      const entries = rows.map((r) => ({ ...r, at: r.at.toISOString() }));
      const last = rows.at(-1);
      return c.json({ entries, next: rows.length === limit && last ? last.id : null }, 200);
    },
  );
  return app;
}

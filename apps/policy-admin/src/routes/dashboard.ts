import { createRoute } from '@hono/zod-openapi';
import { Hono } from 'hono';
import { DASHBOARD_HTML, DASHBOARD_JS } from '../dashboard/page.js';
import type { DashboardSnapshot } from '../dashboard/snapshot.js';
import { ok, problems, security, subApp } from './common.js';

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
};

/** The page and its script: public (the token is asked for inside). */
export function dashboardPages() {
  const app = new Hono();
  const page = () => new Response(DASHBOARD_HTML, { headers: { ...PAGE_HEADERS, 'content-type': 'text/html; charset=utf-8' } });
  app.get('/', page);
  app.get('/dashboard', page);
  app.get('/dashboard/app.js', () => new Response(DASHBOARD_JS, { headers: { ...PAGE_HEADERS, 'content-type': 'text/javascript; charset=utf-8' } }));
  return app;
}

/** `GET /v1/dashboard`: the live numbers the page polls once a second. */
export function dashboardRoutes(deps: { snapshot: () => Promise<DashboardSnapshot> }) {
  const app = subApp();
  app.openapi(
    createRoute({ method: 'get', path: '/', tags: ['dashboard'], security, summary: 'Live numbers per dependency and tenant, dead letters, policy history', responses: { ...ok('Dashboard snapshot'), 401: problems[401] } }),
    async (c) => c.json(await deps.snapshot(), 200, { 'cache-control': 'no-store' }),
  );
  return app;
}

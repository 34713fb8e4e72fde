import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
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

/**
 * The files of the `uplot` package the page loads (the charts), and their content types. Only these
 * names are served, so no request path ever reaches the file system (as `/docs` serves Swagger UI).
 */
const ASSETS: Readonly<Record<string, string>> = {
  'uPlot.iife.min.js': 'text/javascript; charset=utf-8',
  'uPlot.min.css': 'text/css; charset=utf-8',
};

let assetDir: string | undefined;
const assets = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

function readAsset(name: string): Promise<Uint8Array<ArrayBuffer>> {
  let file = assets.get(name);
  if (file === undefined) {
    assetDir ??= path.join(path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
    file = readFile(path.join(assetDir, name)).then((buffer) => new Uint8Array(buffer));
    // A failed read (package missing) is not cached: the next request tries again.
    file.catch(() => assets.delete(name));
    assets.set(name, file);
  }
  return file;
}

/** The page, its script and the chart library's files: public (the token is asked for inside). */
export function dashboardPages() {
  const app = new Hono();
  const page = () => new Response(DASHBOARD_HTML, { headers: { ...PAGE_HEADERS, 'content-type': 'text/html; charset=utf-8' } });
  app.get('/', page);
  app.get('/dashboard', page);
  app.get('/dashboard/app.js', () => new Response(DASHBOARD_JS, { headers: { ...PAGE_HEADERS, 'content-type': 'text/javascript; charset=utf-8' } }));
  app.get('/dashboard/assets/:file', async (c) => {
    const name = c.req.param('file');
    const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (type === undefined) return c.notFound();
    // A pinned package version: the file changes only with a deploy, an hour of caching is safe.
    return c.body(await readAsset(name), 200, { ...PAGE_HEADERS, 'content-type': type, 'cache-control': 'public, max-age=3600' });
  });
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

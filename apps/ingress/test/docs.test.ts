import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { serve, type ServerType } from '@hono/node-server';
import { loadSettings } from '@janus/config';
import { launchChromium, openOfflinePage, testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, start } from './helpers.js';

// `/docs` in a real browser that can reach only 127.0.0.1: Swagger UI must come from the app
// itself (the swagger-ui-dist package), not from a CDN, or the page stays blank offline.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const screenshot = path.join(root, 'screenshots/ingress-docs.png');
const ns = testNamespace('ingress_docs');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let server: ServerType;
let browser: Browser;
let url = '';

beforeAll(async () => {
  browser = await launchChromium();
  ingress = await start(ns);
  server = serve({ fetch: ingress.app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((r) => server.once('listening', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  // a server that never started (the browser was missing) has nothing to close: waiting would hang
  if (server) await new Promise((r) => server.close(r));
  await ingress?.close();
  await cleanup(settings, ns);
});

describe('/docs', () => {
  it('renders the operations offline, loading nothing from outside 127.0.0.1', async () => {
    const offline = await openOfflinePage(browser);
    const { page } = offline;
    await page.goto(`${url}/docs`);

    const submit = page.locator('.opblock-post [data-path="/v1/jobs"]');
    await submit.waitFor({ state: 'visible', timeout: 20_000 });
    expect(await submit.textContent()).toBe('/v1/jobs');
    for (const p of ['/v1/jobs/batch', '/v1/jobs/{jobId}', '/v1/usage', '/v1/jobs/{jobId}/outcome']) {
      expect(await page.locator(`[data-path="${p}"]`).count(), p).toBeGreaterThan(0);
    }
    expect(await page.title()).toBe('Janus ingress API');
    expect(await offline.finish(screenshot)).toEqual({ blocked: [], errors: [] });
  }, 60_000);

  it('serves only the Swagger UI files it names', async () => {
    const css = await fetch(`${url}/docs/assets/swagger-ui.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toContain('text/css');
    expect((await fetch(`${url}/docs/assets/package.json`)).status).toBe(404);
    expect((await fetch(`${url}/docs/assets/..%2F..%2Fpackage.json`)).status).toBe(404);
  });
});

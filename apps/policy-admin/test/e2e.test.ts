import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { loadSettings } from '@janus/config';
import { createDb, deadLetters } from '@janus/db';
import { dropNatsNamespace, dropPgNamespace, dropRedisNamespace, freePort, launchChromium, openOfflinePage, testEnv, testNamespace } from '@janus/testing';
import { waitFor } from './harness.js';

/**
 * Black-box, real processes: policy-admin started in development mode WITHOUT a token (it must
 * generate and print one), the real ingress next to it, the policy applied with the CLI from a
 * YAML file, changes and revocations measured at ingress, and the dashboard driven in Chromium
 * while jobs are submitted to ingress.
 */
// The page-side callbacks below run in Chromium (functions, not strings: the page's CSP forbids
// eval); this Node project has no DOM types, so declare the little they touch.
type PageNode = { textContent: string | null } | null;
declare const document: { getElementById(id: string): PageNode; querySelector(selector: string): PageNode };
declare const sessionStorage: { getItem(key: string): string | null };

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');
const screenshot = path.join(root, 'apps/policy-admin/test-output/dashboard.png');

const ns = testNamespace('admin_e2e');
const env = testEnv(ns, { LOG_LEVEL: 'warn' });
const settings = loadSettings(env);
const children: ChildProcess[] = [];
let browser: Browser | undefined;
let adminUrl = '';
let ingressUrl = '';
let token = '';

function start(app: string, extra: Record<string, string>, drop: string[] = []): { child: ChildProcess; output: () => string } {
  const childEnv: Record<string, string> = { PATH: process.env.PATH ?? '', ...env, ...extra };
  for (const k of drop) delete childEnv[k];
  const child = spawn(tsx, [path.join('apps', app, 'src/main.ts')], { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  children.push(child);
  return { child, output: () => out };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

async function ready(url: string, timeoutMs: number): Promise<void> {
  await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, timeoutMs, 100);
}

const admin = async (method: string, p: string, body?: unknown) => {
  const res = await fetch(`${adminUrl}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
};

const submit = (key: string, type: string) =>
  fetch(`${ingressUrl}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ type, payload: { n: 1 } }) });

function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(tsx, ['tools/cli/src/main.ts', 'policy', ...args], { cwd: root, env: { PATH: process.env.PATH ?? '', JANUS_ADMIN_URL: adminUrl, JANUS_ADMIN_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

const POLICY_YAML = `
dependencies:
  stripe:
    rate: { limit: 10, periodMs: 1000 }
    concurrency: 50
tenants:
  acme: { weight: 2, budget: { limit: 100000, periodMs: 3600000 } }
  globex: {}
jobTypes:
  charge:
    dependencies: [{ name: stripe }]
`;

beforeAll(async () => {
  browser = await launchChromium(); // first: a missing chromium fails at once, naming the package
  const [adminPort, ingressPort] = [await freePort(), await freePort()];
  adminUrl = `http://127.0.0.1:${adminPort}`;
  ingressUrl = `http://127.0.0.1:${ingressPort}`;
  const adm = start('policy-admin', { NODE_ENV: 'development', JANUS_ADMIN_PORT: String(adminPort) }, ['JANUS_ADMIN_TOKEN']);
  await waitFor(() => /dev token \(NODE_ENV=development\): (\S+)/.test(adm.output()), 30_000, 50).catch(() => {
    throw new Error(`policy-admin printed no dev token:\n${adm.output()}`);
  });
  token = /dev token \(NODE_ENV=development\): (\S+)/.exec(adm.output())![1]!;
  await ready(adminUrl, 20_000);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  for (const c of children) await stop(c);
  await dropRedisNamespace(settings.redisUrl, ns);
  await dropNatsNamespace([...settings.natsServers], ns);
  await dropPgNamespace(settings.databaseUrl, ns);
}, 60_000);

describe('policy-admin end to end', () => {
  it('development mode generated a token that the API accepts', async () => {
    expect(token).toMatch(/^dev_/);
    expect((await admin('GET', '/v1/policy')).status).toBe(200);
    expect((await fetch(`${adminUrl}/v1/policy`)).status).toBe(401);
  });

  it('the CLI applies a YAML policy, diffs it (no changes) and reads it back', async () => {
    const file = path.join(os.tmpdir(), `${ns}-policy.yaml`);
    await writeFile(file, POLICY_YAML);
    const diff = await cli(['diff', '-f', file]);
    expect(diff.code).toBe(0);
    expect(diff.out).toContain('+ jobTypes.charge');
    expect(diff.out).toContain('nothing changed');
    const apply = await cli(['apply', '-f', file]);
    expect(apply.out).toContain('applied: policy version 0 → 1');
    expect(apply.code).toBe(0);
    expect((await cli(['diff', '-f', file])).out).toContain('no changes');
    const get = await cli(['get']);
    expect(get.out).toContain('# policy version 1');
    expect(get.out).toContain('stripe:');
    await writeFile(file, 'jobTypes:\n  x:\n    dependencies: [{ name: nope }]\n');
    const refused = await cli(['apply', '-f', file]);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('jobTypes.x.dependencies.0.name: unknown dependency "nope"');
  }, 60_000);

  it('ingress (a real second app) applies job-type changes and drops revoked keys within 1 s', async () => {
    const ingressPort = new URL(ingressUrl).port;
    const ing = start('ingress', { JANUS_INGRESS_PORT: ingressPort });
    await ready(ingressUrl, 30_000).catch(() => {
      throw new Error(`ingress did not become ready:\n${ing.output()}`);
    });
    const created = await admin('POST', '/v1/tenants/acme/keys', { label: 'e2e' });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    // Ingress may hold admission closed briefly after a fresh start (state recovery): wait for a decision.
    await waitFor(async () => [202, 429].includes((await submit(key, 'charge')).status), 10_000, 50);

    const changes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect((await admin('PUT', `/v1/job-types/new${i}`, { dependencies: [{ name: 'stripe' }] })).status).toBe(200);
      await waitFor(async () => (await submit(key, `new${i}`)).status !== 404, 2_000, 5);
      changes.push(performance.now() - started);
    }
    console.log(`job type added → accepted by ingress: max ${Math.max(...changes).toFixed(0)} ms over ${changes.length}`);
    expect(Math.max(...changes)).toBeLessThan(1_000);

    const victim = await admin('POST', '/v1/tenants/globex/keys');
    await waitFor(async () => (await submit(victim.body.key, 'charge')).status !== 401, 2_000, 5);
    const started = performance.now();
    expect((await admin('DELETE', `/v1/tenants/globex/keys/${victim.body.keyId}`)).status).toBe(204);
    await waitFor(async () => (await submit(victim.body.key, 'charge')).status === 401, 2_000, 5);
    const revoked = performance.now() - started;
    console.log(`key revoked → refused by ingress: ${revoked.toFixed(0)} ms`);
    expect(revoked).toBeLessThan(1_000);
  }, 60_000);

  it('the dashboard in Chromium: token login, live numbers move while jobs are submitted, screenshot', async () => {
    const key = (await admin('POST', '/v1/tenants/acme/keys')).body.key as string;
    const db = createDb(settings, { max: 1 });
    await db.db.insert(deadLetters).values({ jobId: 'job-dead-1', tenant: 'acme', type: 'charge', attempts: 3, lastOutcome: 'failed', error: '<b>card declined</b>', deadAt: new Date() });
    // A job waiting in the room for a minute already (no dispatcher runs here).
    await db.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, created_at, queued_at, due_at, not_before, state, updated_at)
       VALUES ('job-waiting-1', 1, 'acme', 'charge', 1, 'normal', now(), now() - interval '60 seconds', now(), now(), 'queued', now())`,
    );
    await db.close();

    const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${adminUrl}/dashboard`);
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#token', 'wrong-token-0123456789');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.getElementById('login-error')?.textContent?.includes('not accepted'));
    await page.fill('#token', token);
    await page.click('#login-submit');
    await page.waitForSelector('#dashboard:not([hidden])');
    const version = String((await admin('GET', '/v1/policy')).body.version);
    await page.waitForFunction((v) => document.getElementById('version')?.textContent === v, version);
    expect(await page.evaluate(() => sessionStorage.getItem('janusAdminToken'))).toBe(token);

    const admittedCell = '[data-dep="stripe"] [data-field="admitted"]';
    const before = Number(await page.textContent(admittedCell));
    // A producer well over stripe's 10/s: some admitted, some rejected with dependency_rate.
    let producing = true;
    const producer = (async () => {
      while (producing) {
        await Promise.all(Array.from({ length: 5 }, () => submit(key, 'charge').then((r) => r.body?.cancel())));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await page.waitForFunction((sel) => Number(document.querySelector(sel)?.textContent ?? 0) > 0, admittedCell, { timeout: 10_000 });
      await page.waitForFunction(() => document.querySelector('[data-dep="stripe"] [data-field="rejected"]')?.textContent?.includes('dependency_rate'), undefined, { timeout: 10_000 });
    } finally {
      producing = false;
      await producer;
    }
    const after = Number(await page.textContent(admittedCell));
    expect(after).toBeGreaterThan(before);
    const inFlight = await page.textContent('[data-dep="stripe"] td:nth-child(4)');
    expect(inFlight).toMatch(/^[1-9]\d* \/ 50$/);
    expect(await page.textContent('#dead tbody')).toContain('<b>card declined</b>'); // shown as text, not markup
    expect(await page.textContent('[data-tenant="acme"]')).toContain('/ 100000');
    // The waiting room: one job queued, waiting since a minute ago.
    expect(await page.textContent('[data-tenant="acme"] td:nth-child(6)')).toBe('1');
    expect(await page.textContent('[data-tenant="acme"] td:nth-child(7)')).toMatch(/^6\d(\.\d)? s$/);
    expect(await page.textContent('#history tbody')).toContain('policy.put policy');
    // The dependency state (GET /v1/dependencies/{name}/state per row) and its sparkline.
    const depState = '[data-dep-state="stripe"]';
    expect(await page.textContent(`${depState} [data-field="declared"]`)).toBe('10 / s');
    expect(await page.textContent(`${depState} [data-field="effective"]`)).toBe('10 / s (100%)');
    expect(await page.textContent(`${depState} [data-field="circuit"]`)).toBe('closed');
    expect(await page.textContent(`${depState} [data-field="inflight"]`)).toMatch(/^[1-9]\d* \/ 50$/);
    expect(await page.textContent(`${depState} [data-field="retry-budget"]`)).toMatch(/^0 \/ \d+$/);
    expect(await page.locator(`${depState} [data-field="chart"] svg polyline`).count()).toBe(2);
    expect(pageErrors).toEqual([]);

    await mkdir(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(existsSync(screenshot)).toBe(true);
  }, 60_000);

  it('/docs renders offline: Swagger UI from the app itself, nothing loaded from outside 127.0.0.1', async () => {
    const offline = await openOfflinePage(browser!);
    const { page } = offline;
    await page.goto(`${adminUrl}/docs`);
    const putPolicy = page.locator('.opblock-put [data-path="/v1/policy"]');
    await putPolicy.waitFor({ state: 'visible', timeout: 20_000 });
    expect(await page.locator('.opblock-post [data-path="/v1/tenants/{id}/keys"]').count()).toBe(1);
    expect(await offline.finish(path.join(root, 'screenshots/policy-admin-docs.png'))).toEqual({ blocked: [], errors: [] });
  }, 60_000);
});

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { closeServer, listen } from '@janus/runtime';
import { freePort, launchChromium, REPO_ROOT, startAppProcess, testEnv, waitFor, type AppProcess } from '@janus/testing';
import { Permanent, startWorker, type Worker } from '@janus/worker-sdk';
import { startAdmin, TOKEN, type AdminHarness } from './harness.js';

/**
 * The dashboard's Jobs panel, dead jobs and pause buttons in Chromium, on the whole loop: this
 * policy-admin (listening), ingress, the retry-scheduler (outcomes, dead letters, the room's
 * dispatcher) and the persister as real child processes, and a worker (the SDK) that fails a job's
 * first attempt with `Permanent` (no retry: dead at once) and succeeds afterwards. An operator finds
 * the dead job, clicks Replay, and sees it run to `succeeded`.
 */
// The page-side callbacks run in Chromium; this Node project has no DOM types.
type PageNode = { textContent: string | null } | null;
declare const document: { querySelector(selector: string): PageNode; getElementById(id: string): PageNode };

const outDir = path.join(REPO_ROOT, 'apps/policy-admin/test-output');
let h: AdminHarness;
let server: Awaited<ReturnType<typeof listen>> | undefined;
let adminUrl = '';
let browser: Browser | undefined;
let worker: Worker | undefined;
const processes: AppProcess[] = [];
let ingressUrl = '';
let key = '';
const runs: number[] = [];

beforeAll(async () => {
  browser = await launchChromium(); // first: a missing chromium fails at once, naming the package
  h = await startAdmin('admin_dash_jobs', { admissionHistory: { everyMs: 500 } });
  const port = await freePort();
  server = await listen(h.app, { host: '127.0.0.1', port }, h.rt.logger);
  adminUrl = `http://127.0.0.1:${port}`;
  expect((await h.call('PUT', '/v1/dependencies/stripe', { rate: { limit: 50, periodMs: 1000 }, concurrency: 10 })).status).toBe(200);
  expect((await h.call('PUT', '/v1/tenants/acme', {})).status).toBe(200);
  const put = await h.call('PUT', '/v1/job-types/charge', { dependencies: [{ name: 'stripe' }], timeoutMs: 10_000, retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 } });
  expect(put.status).toBe(200);
  key = (await h.call('POST', '/v1/tenants/acme/keys')).body.key as string;
  const env = testEnv(h.ns, { LOG_LEVEL: 'warn' });
  processes.push(...(await Promise.all([startAppProcess('ingress', env), startAppProcess('retry-scheduler', env), startAppProcess('persister', env)])));
  ingressUrl = processes[0]!.url;
  worker = await waitFor(
    () =>
      startWorker({
        nc: h.rt.nc,
        namespace: h.ns,
        jobType: 'charge',
        handler: async (job) => {
          runs.push(job.attempt);
          if (job.attempt === 1) throw new Permanent('card declined for good');
        },
      }).catch(() => undefined),
    30_000,
    100,
  );
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await worker?.stop();
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
  if (server) await closeServer(server);
  await h?.close();
}, 60_000);

async function submit(): Promise<string> {
  // Ingress may hold admission closed briefly after a fresh start (state recovery): wait for a decision.
  let jobId = '';
  await waitFor(
    async () => {
      const res = await fetch(`${ingressUrl}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'charge', payload: { order: 42 } }) });
      if (res.status !== 202) return false;
      jobId = ((await res.json()) as { jobId: string }).jobId;
      return true;
    },
    20_000,
    100,
  );
  return jobId;
}

async function shot(page: Page, name: string): Promise<void> {
  await mkdir(outDir, { recursive: true });
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage: true });
  expect(existsSync(file)).toBe(true);
}

describe('dashboard: jobs, replay, pause (Chromium)', () => {
  it('an operator finds the dead job, clicks Replay, and sees it run to succeeded; pauses and resumes a dependency; charts draw', async () => {
    const jobId = await submit();
    await waitFor(async () => (await h.call('GET', `/v1/admin/jobs/${jobId}`)).body?.status === 'dead', 30_000, 100);

    const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${adminUrl}/dashboard`);
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#token', TOKEN);
    await page.click('#login-submit');
    await page.waitForSelector('#dashboard:not([hidden])');

    // The dead list shows it with its last error; the browse list by status too.
    const deadRow = `[data-dead-job="${jobId}"]`;
    await page.waitForSelector(deadRow, { timeout: 10_000 });
    expect(await page.textContent(deadRow)).toContain('card declined for good');
    await page.selectOption('#job-status', 'dead');
    await page.waitForSelector(`#jobs [data-job="${jobId}"]`);
    expect(await page.textContent(`#jobs [data-job="${jobId}"] [data-field="status"]`)).toBe('dead');

    // Search by id: its view (status, attempts, last error, payload).
    await page.fill('#job-search', jobId);
    await page.click('#job-search-go');
    await page.waitForSelector('#job-detail:not([hidden])');
    expect(await page.textContent('#jd-status')).toBe('dead');
    expect(await page.textContent('#jd-error')).toBe('card declined for good');
    expect(JSON.parse((await page.textContent('#jd-payload')) ?? 'null')).toEqual({ order: 42 });
    await shot(page, 'dashboard-dead-job.png');

    await page.click(`${deadRow} button[data-replay]`);
    await page.waitForFunction(() => document.getElementById('replay-msg')?.textContent?.includes('attempt 2'));
    // The detail refreshes itself: the job leaves dead and runs to its end.
    await page.waitForFunction(() => document.getElementById('jd-status')?.textContent === 'succeeded', undefined, { timeout: 30_000 });
    expect(await page.textContent('#jd-attempts')).toBe('2');
    expect(runs).toEqual([1, 2]);
    await page.waitForSelector(deadRow, { state: 'detached', timeout: 10_000 });
    expect((await h.call('GET', `/v1/admin/jobs/${jobId}`)).body.status).toBe('succeeded');
    await shot(page, 'dashboard-replayed.png');

    // Pause and Resume from the dependency-state table.
    const pauseButton = '[data-dep-state="stripe"] button[data-pause]';
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'Pause', pauseButton);
    await page.click(pauseButton);
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'Resume', pauseButton);
    expect((await h.call('GET', '/v1/dependencies/stripe/pause')).body).toMatchObject({ paused: true });
    expect(await page.textContent('[data-dep-state="stripe"] [data-field="pause"]')).toContain('paused');
    await page.click(pauseButton);
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'Pause', pauseButton);
    expect((await h.call('GET', '/v1/dependencies/stripe/pause')).body).toMatchObject({ paused: false });

    // The admission chart of stripe (uPlot, served by the app): drawn, with the admissions of this test.
    await page.waitForSelector('[data-chart="stripe"] canvas');
    expect(await page.textContent('[data-chart="stripe"]')).toContain('admitted/s');
    const snapshot = await h.call('GET', '/v1/dashboard');
    const series = snapshot.body.dependencies.find((d: { name: string }) => d.name === 'stripe').admissions as [number, number, Record<string, number>][];
    expect(series.reduce((n, b) => n + b[1], 0)).toBeGreaterThanOrEqual(1);
    // The queued backlog per tenant is in the tenants table.
    expect(await page.textContent('[data-tenant="acme"] td:nth-child(6)')).toBe('0');
    await shot(page, 'dashboard-jobs.png');
    expect(pageErrors).toEqual([]);
  }, 120_000);
});

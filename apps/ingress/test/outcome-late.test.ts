import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import type { OutcomeEvent } from '@janus/contracts';
import { firstReportByToken, Persister } from '@janus/event-store';
import { messageIds, publishJson } from '@janus/messaging';
import { createMetricsRegistry } from '@janus/observability';
import { testEnv, testNamespace, waitFor } from '@janus/testing';
import { pino } from 'pino';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, storedMessages } from './helpers.js';

/**
 * The HTTP outcome route judges "in time" as the scheduler does: by when JetStream stored the report,
 * not by when ingress settles. A report stored before the lease expired counts even when the lease
 * has expired by the time it is settled (here: the worker's first try was stored but its answer was
 * lost, and it reports again after the expiry); a first report after the expiry is a 409. Earlier
 * reports are found in the persister's record (outcome_events), so a persister runs here.
 */
const ns = testNamespace('ingress-outcome-late');
const settings = loadSettings(testEnv(ns));
const TIMEOUT_MS = 800;
let ingress: Ingress;
let persister: Persister;
let key: string;

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: { api: { concurrency: 5 } },
    tenants: { acme: {} },
    jobTypes: { work: { dependencies: [{ name: 'api' }], timeoutMs: TIMEOUT_MS, retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 } } },
  });
  key = (await createKey([ingress], 'acme')).key;
  const { db, nc, jsm, names } = ingress.runtime;
  persister = new Persister({ db: db.db, js: jetstream(nc), jsm, names, logger: pino({ level: 'silent' }), registry: createMetricsRegistry('outcome-late'), lingerMs: 5 });
  await persister.start();
});

afterAll(async () => {
  await persister.stop();
  await ingress.close();
  await cleanup(settings, ns);
});

async function submit(): Promise<{ jobId: string; token: string; expiresAt: number }> {
  const res = await ingress.app.request('/v1/jobs', json({ type: 'work' }, { authorization: `Bearer ${key}` }));
  expect(res.status).toBe(202);
  const { jobId } = (await res.json()) as { jobId: string };
  const names = ingress.runtime.names;
  const job = (await storedMessages(ingress, names.streams.jobs, names.subjects.job('work'))).find((m) => m.body.jobId === jobId)!;
  const lease = job.body.lease as { token: string; expiresAt: string };
  return { jobId, token: lease.token, expiresAt: Date.parse(lease.expiresAt) };
}

const report = (jobId: string, token: string) =>
  ingress.app.request(`/v1/jobs/${jobId}/outcome`, json({ jobId, attempt: 1, leaseToken: token, outcome: 'succeeded' }, { authorization: `Bearer ${token}` }));
/** Until the persister has recorded a report of the attempt made with `token`. */
const recorded = (jobId: string, token: string) => waitFor(() => firstReportByToken(ingress.runtime.db.db, jobId, 1, token), 10_000);
const untilExpired = (expiresAt: number) => new Promise((r) => setTimeout(r, expiresAt - Date.now() + 200));

describe('POST /v1/jobs/{jobId}/outcome after an earlier report, or after the lease expired', () => {
  it('a report stored before the expiry counts: reporting it again after the expiry is 204 and settles the lease', async () => {
    const { jobId, token, expiresAt } = await submit();
    // The first try reached JetStream in time (as ingress publishes it), but its answer was lost.
    const first: OutcomeEvent & { reportedVia: string } = { jobId, attempt: 1, leaseToken: token, outcome: 'succeeded', reportedVia: 'http' };
    await publishJson(jetstream(ingress.runtime.nc), ingress.runtime.names.subjects.outcome('work'), first, messageIds.attempt(jobId, 1));
    await recorded(jobId, token);
    await untilExpired(expiresAt);
    expect(await ingress.limiter.leaseState(token)).toMatchObject({ ok: true, lease: { state: 'expired' } });

    const again = await report(jobId, token);
    expect(again.status).toBe(204);
    expect(await ingress.limiter.leaseState(token)).toMatchObject({ ok: true, lease: { state: 'settled', outcome: 'succeeded' } });
    // One report in the stream: the first, on record, decided; the second was not published.
    const names = ingress.runtime.names;
    expect((await storedMessages(ingress, names.streams.outcomes, names.subjects.outcome('work'))).filter((m) => m.body.jobId === jobId)).toHaveLength(1);
    expect((await report(jobId, token)).status).toBe(409); // settled: a repeat changes nothing
  });

  it('a report that differs from the one JetStream holds for the attempt is 409 and settles nothing; the same one again is 204', async () => {
    const { jobId, token } = await submit();
    // The worker's first report (failed) was stored but its answer lost; it now reports success.
    const first: OutcomeEvent & { reportedVia: string } = { jobId, attempt: 1, leaseToken: token, outcome: 'failed', error: 'boom', reportedVia: 'http' };
    await publishJson(jetstream(ingress.runtime.nc), ingress.runtime.names.subjects.outcome('work'), first, messageIds.attempt(jobId, 1));
    await recorded(jobId, token);
    const other = await report(jobId, token);
    expect(other.status).toBe(409);
    expect(((await other.json()) as { detail: string }).detail).toMatch(/another outcome/);
    // Not settled as succeeded: what the stream holds (failed) is what the scheduler will apply.
    expect(await ingress.limiter.leaseState(token)).toMatchObject({ ok: true, lease: { state: expect.not.stringMatching(/^settled$/) } });
    const same = await ingress.app.request(`/v1/jobs/${jobId}/outcome`, json({ jobId, attempt: 1, leaseToken: token, outcome: 'failed', error: 'boom' }, { authorization: `Bearer ${token}` }));
    expect(same.status).toBe(204);
    expect(await ingress.limiter.leaseState(token)).toMatchObject({ ok: true, lease: { state: 'settled', outcome: 'failed' } });
  });

  it('a first report after the expiry is 409 and settles nothing', async () => {
    const { jobId, token, expiresAt } = await submit();
    await untilExpired(expiresAt);
    const late = await report(jobId, token);
    expect(late.status).toBe(409);
    expect(((await late.json()) as { detail: string }).detail).toMatch(/expired/);
    expect(await ingress.limiter.leaseState(token)).toMatchObject({ ok: true, lease: { state: 'expired' } });
  });
});

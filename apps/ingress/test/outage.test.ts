import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { PROBLEM_BASE } from '@janus/contracts';
import { ensureStreams } from '@janus/messaging';
import { TcpProxy, testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, waitFor } from './helpers.js';

const ns = testNamespace('ingress-outage');
const settings = loadSettings(testEnv(ns));
let nats: TcpProxy;
let redis: TcpProxy;
let ingress: Ingress;
let key: string;

const submit = (type: string) => ingress.app.request('/v1/jobs', json({ type }, { authorization: `Bearer ${key}` }));

beforeAll(async () => {
  nats = await TcpProxy.start({ host: '127.0.0.1', port: 4222 });
  redis = await TcpProxy.start({ host: '127.0.0.1', port: 6379 });
  ingress = await start(ns, { NATS_URL: nats.url(settings.natsServers[0]!), REDIS_URL: redis.url(settings.redisUrl) }, { publishTimeoutMs: 500 });
  await setPolicy([ingress], {
    dependencies: { db: { concurrency: 100 }, cache: { concurrency: 100, failMode: 'open' } },
    tenants: { acme: {} },
    jobTypes: { report: { dependencies: [{ name: 'db' }] }, warm: { dependencies: [{ name: 'cache' }] } },
  });
  key = (await createKey([ingress], 'acme')).key;
});

afterAll(async () => {
  await ingress.close();
  await nats.close();
  await redis.close();
  await cleanup(settings, ns);
});

const inFlight = async (dep: string) => (await ingress.limiter.inspect()).dependencies[dep]?.inFlight;

describe('fail-closed', () => {
  it('NATS down: 503 problem+json and the limiter state is unchanged; back up: admissions resume without a restart', async () => {
    expect((await submit('report')).status).toBe(202);
    await nats.cut();
    // The first requests after the cut may have sent their job message before the connection
    // dropped: those keep their limits (pending) until their leases expire. Once the ingress knows
    // NATS is down, nothing is taken.
    await waitFor(async () => (await submit('report')).status === 503, 5_000, 50);
    const before = await inFlight('db');
    const res = await submit('report');
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(((await res.json()) as { type: string }).type).toBe(`${PROBLEM_BASE}/service-unavailable`);
    expect(await inFlight('db')).toBe(before);

    await nats.restore();
    await waitFor(async () => (await submit('report')).status === 202, 10_000, 100);
    expect(await inFlight('db')).toBe((before ?? 0) + 1);
  });

  it('Redis down: 503 for fail-closed job types; fail-open job types are admitted and counted', async () => {
    await redis.cut();
    await waitFor(async () => (await submit('report')).status === 503, 5_000, 50);
    const open = await submit('warm');
    expect(open.status).toBe(202);
    expect(((await open.json()) as { status: string }).status).toBe('admitted');
    const metrics = await (await ingress.app.request('/metrics')).text();
    expect(metrics).toMatch(/janus_fail_open_admissions_total\{job_type="warm",app="ingress"\} 1/);
    await redis.restore();
    await waitFor(async () => (await submit('report')).status === 202, 10_000, 100);
  });

  it('a failed publish revokes the admission: 503, nothing consumed, and the idempotency key is free again', async () => {
    const before = await inFlight('db');
    const names = ingress.runtime.names;
    await ingress.runtime.jsm.streams.delete(names.streams.jobs); // JetStream now refuses the job message
    const send = () => ingress.app.request('/v1/jobs', json({ type: 'report' }, { authorization: `Bearer ${key}`, 'idempotency-key': 'k-revoke' }));
    const res = await send();
    expect(res.status).toBe(503);
    expect(await inFlight('db')).toBe(before);
    const metrics = await (await ingress.app.request('/metrics')).text();
    expect(metrics).toMatch(/janus_publish_failures_total\{stream="jobs",app="ingress"\} [1-9]/);
    await ensureStreams(ingress.runtime.jsm, names);
    const again = await send();
    expect(again.status).toBe(202);
    expect(await inFlight('db')).toBe((before ?? 0) + 1);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { startNatsServer, testEnv, testNamespace, type NatsServerProcess } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start } from './helpers.js';

/**
 * A payload within its job type's maxPayloadBytes but too large for one message on the NATS server
 * in use (its max_payload, here 12 KiB) can never be published: it is 413, like any payload
 * over its limit, and takes nothing (it was admitted, then answered 503; CONTRACT §3: no input
 * yields a 5xx).
 */
const ns = testNamespace('ingress-max-payload');
let nats: NatsServerProcess;
let ingress: Ingress;
let key: string;

beforeAll(async () => {
  nats = await startNatsServer({ config: 'max_payload: 12288' });
  ingress = await start(ns, { NATS_URL: nats.url });
  await setPolicy([ingress], {
    dependencies: { api: { concurrency: 1 } },
    tenants: { acme: {} },
    jobTypes: { work: { dependencies: [{ name: 'api' }], maxPayloadBytes: 100_000 } },
  });
  key = (await createKey([ingress], 'acme')).key;
}, 60_000);

afterAll(async () => {
  await ingress?.close();
  await cleanup(loadSettings(testEnv(ns, { NATS_URL: nats.url })), ns);
  await nats?.stop();
});

const submit = (payload: unknown) => ingress.app.request('/v1/jobs', json({ type: 'work', payload }, { authorization: `Bearer ${key}` }));

describe("a payload too large for the NATS server's max_payload", () => {
  it('is 413 naming the payload, and consumes nothing; one that fits is admitted', async () => {
    const big = await submit('x'.repeat(13_000));
    expect(big.status).toBe(413);
    const problem = (await big.json()) as { type: string; detail: string; errors: { path: string }[] };
    expect(problem.type).toMatch(/payload-too-large$/);
    expect(problem.detail).toMatch(/max_payload/);
    expect(problem.errors[0]?.path).toBe('payload');
    const batch = await ingress.app.request('/v1/jobs/batch', json({ jobs: [{ type: 'work' }, { type: 'work', payload: 'x'.repeat(13_000) }] }, { authorization: `Bearer ${key}` }));
    expect(batch.status).toBe(413);
    expect(((await batch.json()) as { errors: { path: string }[] }).errors[0]?.path).toBe('jobs.1.payload');
    // api's one slot is free: a small job is admitted.
    expect((await submit('small')).status).toBe(202);
  });
});

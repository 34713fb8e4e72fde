import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start } from './helpers.js';

const ns = testNamespace('ingress-multi');
const settings = loadSettings(testEnv(ns));
let a: Ingress;
let b: Ingress;
let key: string;

beforeAll(async () => {
  // Two instances, each with its own Redis, NATS and PostgreSQL connections and its own limiter.
  [a, b] = await Promise.all([start(ns), start(ns)]);
  await setPolicy([a, b], {
    dependencies: { pay: { concurrency: 17 }, sms: { rate: { limit: 23, periodMs: 3_600_000 } } },
    tenants: { acme: {} },
    jobTypes: { charge: { dependencies: [{ name: 'pay' }] }, text: { dependencies: [{ name: 'sms' }] } },
  });
  key = (await createKey([a, b], 'acme')).key;
});

afterAll(async () => {
  await Promise.all([a.close(), b.close()]);
  await cleanup(settings, ns);
});

async function storm(type: string, clients: number, perClient: number): Promise<number[]> {
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const app = c % 2 === 0 ? a.app : b.app;
      for (let i = 0; i < perClient; i++) {
        const res = await app.request('/v1/jobs', json({ type, priority: 'high' }, { authorization: `Bearer ${key}` }));
        statuses.push(res.status);
        await res.arrayBuffer();
      }
    }),
  );
  return statuses;
}

describe('two ingress instances, 128 concurrent clients', () => {
  it('a concurrency limit holds exactly', async () => {
    const statuses = await storm('charge', 128, 2);
    expect(statuses.filter((s) => s === 202)).toHaveLength(17);
    expect(statuses.filter((s) => s === 429)).toHaveLength(256 - 17);
    expect((await a.limiter.inspect()).dependencies.pay?.inFlight).toBe(17);
  });

  it('a rate limit holds exactly', async () => {
    const statuses = await storm('text', 128, 2);
    expect(statuses.filter((s) => s === 202)).toHaveLength(23);
    expect(statuses.filter((s) => s === 429)).toHaveLength(256 - 23);
  });
});

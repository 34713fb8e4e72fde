import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { JobMessage } from '@janus/contracts';
import { testEnv, testNamespace, waitFor } from '@janus/testing';
import type { Dispatcher } from '@janus/waiting-room';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, json, setPolicy, start, startDispatcher, storedMessages } from './helpers.js';

/**
 * CONTRACT §3: a queued job's `notBefore` is Janus's estimate of its admission, and "it is never
 * admitted earlier" — also when capacity frees sooner than foreseen: a cost settled below its
 * estimate, jobs ahead cancelled, a fast tenant rate in front of a slow dependency rate with a deep
 * bucket. Through the real path: ingress (mode queue) → PostgreSQL → the dispatcher → JetStream.
 */
const ns = testNamespace('ingress-not-before');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let dispatcher: Dispatcher;
const keys: Record<string, string> = {};

interface Queued {
  readonly jobId: string;
  readonly status: string;
  readonly notBefore?: string;
}

async function submit(tenant: string, type: string): Promise<Queued> {
  const res = await ingress.app.request('/v1/jobs', json({ type, mode: 'queue' }, { authorization: `Bearer ${keys[tenant]}` }));
  expect(res.status).toBe(202);
  return (await res.json()) as Queued;
}

const admitted = async (type: string): Promise<JobMessage[]> =>
  (await storedMessages(ingress, ingress.runtime.names.streams.jobs, ingress.runtime.names.subjects.job(type))).map((m) => JobMessage.parse(m.body));

/** Waits until every queued job of `answers` was admitted; returns admittedAt − notBefore per job (ms). */
async function earliness(type: string, answers: readonly Queued[], timeoutMs = 20_000): Promise<number[]> {
  const queued = answers.filter((a) => a.status === 'queued');
  const runs = await waitFor(async () => {
    const all = await admitted(type);
    return queued.every((q) => all.some((m) => m.jobId === q.jobId)) ? all : undefined;
  }, timeoutMs, 50);
  return queued.map((q) => Date.parse(runs.find((m) => m.jobId === q.jobId)!.admittedAt) - Date.parse(q.notBefore!));
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], {
    dependencies: {
      tokens: { costRate: { limit: 10, periodMs: 1000, burst: 10 } },
      deep: { rate: { limit: 1, periodMs: 1000, burst: 20 } },
      slow: { rate: { limit: 1, periodMs: 1000, burst: 1 } },
      rare: { rate: { limit: 1, periodMs: 60_000, burst: 1 } },
      crawl: { rate: { limit: 1, periodMs: 3_000, burst: 1 } },
    },
    tenants: { acme: {}, fast: { rate: { limit: 10, periodMs: 1000, burst: 1 } }, solo: {}, patient: {}, queueing: {} },
    jobTypes: {
      spend: { dependencies: [{ name: 'tokens', cost: 10 }] },
      burst: { dependencies: [{ name: 'deep' }] },
      trickle: { dependencies: [{ name: 'slow' }] },
      seldom: { dependencies: [{ name: 'rare' }] },
      creep: { dependencies: [{ name: 'crawl' }] },
    },
  });
  for (const t of ['acme', 'fast', 'solo', 'patient', 'queueing']) keys[t] = (await createKey([ingress], t)).key;
  dispatcher = await startDispatcher(ingress, ns);
}, 60_000);

afterAll(async () => {
  await dispatcher?.stop();
  await ingress?.close();
  await cleanup(settings, ns);
});

describe("a queued job's notBefore is an estimate, not just now", () => {
  it('a job a rate refused is queued with notBefore no earlier than the refill the refusal named (not the arrival time)', async () => {
    const first = await submit('patient', 'seldom');
    expect(first.status).toBe('admitted');
    const askedAt = Date.now();
    const second = await submit('patient', 'seldom');
    expect(second.status).toBe('queued');
    // one job a minute: the next token is about a minute away (before: notBefore = the arrival time)
    expect(Date.parse(second.notBefore!) - askedAt).toBeGreaterThan(55_000);
    const view = await ingress.app.request(`/v1/jobs/${second.jobId}`, { headers: { authorization: `Bearer ${keys.patient}` } });
    expect(((await view.json()) as Queued).notBefore).toBe(second.notBefore);
  });

  it('jobs queued behind others on an empty bucket are told a refill later each (the bucket is read, not assumed full), and run then', async () => {
    // one job per 3 s: the first is admitted, the second refused and queued (the refusal names the
    // refill), the third and fourth queue behind it. Before the bucket was read, each was told one
    // refill too early (it assumed a full bucket of 1): 3 s and 6 s instead of 6 s and 9 s.
    expect((await submit('queueing', 'creep')).status).toBe('admitted');
    const answers: Queued[] = [];
    const asked: number[] = [];
    for (let i = 0; i < 3; i++) {
      asked.push(Date.now());
      answers.push(await submit('queueing', 'creep'));
    }
    expect(answers.map((a) => a.status)).toEqual(['queued', 'queued', 'queued']);
    const ahead = answers.map((a, i) => Date.parse(a.notBefore!) - asked[i]!);
    console.log(`[not-before] behind others: notBefore − asked ${ahead.join(', ')} ms`);
    expect(ahead[0]).toBeGreaterThan(2_500);
    expect(ahead[1]).toBeGreaterThan(5_500);
    expect(ahead[2]).toBeGreaterThan(8_500);
    // never earlier, and close: each runs within a second and a half of its notBefore
    const early = await earliness('creep', answers, 20_000);
    console.log(`[not-before] behind others: admitted − notBefore ${early.join(', ')} ms`);
    expect(Math.min(...early)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...early)).toBeLessThan(1_500);
  }, 30_000);
});

describe('a queued job is never admitted before its notBefore', () => {
  it('when the jobs ahead settle far below their cost estimate (units given back)', async () => {
    // A worker that reports an actual cost of 1 for every job (estimate 10): the bucket drains ten
    // times slower than the estimates say.
    let working = true;
    const settled = new Set<string>();
    const worker = (async () => {
      while (working) {
        for (const m of await admitted('spend')) {
          if (settled.has(m.jobId)) continue;
          settled.add(m.jobId);
          await ingress.limiter.settle(m.lease.token, 'succeeded', 1);
          dispatcher.wake(); // as the retry-scheduler's settle does: capacity may have freed
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const answers: Queued[] = [];
    for (let i = 0; i < 6; i++) answers.push(await submit('acme', 'spend'));
    expect(answers.filter((a) => a.status === 'queued').length).toBeGreaterThanOrEqual(4);
    const early = await earliness('spend', answers);
    working = false;
    await worker;
    console.log(`[not-before] refunds: admitted − notBefore ${early.join(', ')} ms`);
    expect(Math.min(...early)).toBeGreaterThanOrEqual(0);
  }, 30_000);

  it('when a fast tenant rate meets a slow dependency rate whose bucket is deep (submitted at once)', async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, () => submit('fast', 'burst')));
    const early = await earliness('burst', answers);
    console.log(`[not-before] deep bucket: admitted − notBefore ${early.join(', ')} ms`);
    expect(Math.min(...early)).toBeGreaterThanOrEqual(0);
  }, 30_000);

  it('when the jobs ahead of it are cancelled', async () => {
    const answers: Queued[] = [];
    for (let i = 0; i < 6; i++) answers.push(await submit('solo', 'trickle'));
    const queued = answers.filter((a) => a.status === 'queued');
    expect(queued.length).toBe(5);
    for (const q of queued.slice(0, 4)) {
      const res = await ingress.app.request(`/v1/jobs/${q.jobId}`, { method: 'DELETE', headers: { authorization: `Bearer ${keys.solo}` } });
      expect(res.status).toBe(204);
    }
    const early = await earliness('trickle', [queued[4]!]);
    console.log(`[not-before] jobs ahead cancelled: admitted − notBefore ${early.join(', ')} ms`);
    expect(early[0]).toBeGreaterThanOrEqual(0);
  }, 30_000);
});

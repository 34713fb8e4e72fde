import { describe, expect, it } from 'vitest';
import { MockApi } from '../src/mock-api.js';
import { backoffMs } from '../src/producers.js';
import { fairShares, jainIndex, measuredSeconds, quantile, report } from '../src/report.js';
import { chart, table } from '../src/render.js';
import { loadScenario, Scenario } from '../src/scenario.js';

const call = async (url: string, tenant = 'a', job = 'j1') => {
  const res = await fetch(`${url}/call`, { method: 'POST', headers: { 'x-tenant': tenant, 'x-job': job } });
  await res.arrayBuffer();
  return res;
};

describe('the mock API', () => {
  it('serves its bucket, then answers 429 with Retry-After; refills at its rate', async () => {
    // A slow refill (one token per 500 ms), so that a loaded machine's slow requests do not refill
    // the bucket between the calls that must find it empty.
    const api = new MockApi({ ratePerSec: 2, burst: 5, concurrency: 100, latencyMs: 0 });
    const url = await api.listen();
    try {
      const statuses = [];
      for (let i = 0; i < 7; i++) statuses.push((await call(url)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
      const over = await call(url);
      expect(over.headers.get('retry-after')).toBe('1');
      await new Promise((r) => setTimeout(r, 600));
      expect((await call(url)).status).toBe(200);
      const counts = api.stats().perTenant.get('a')!;
      expect(counts.reduce((a, c) => a + c.ok, 0)).toBe(6);
      expect(counts.reduce((a, c) => a + c.throttled, 0)).toBe(3);
    } finally {
      await api.close();
    }
  });

  it('answers 429 over its concurrency and 503 during an outage; counts per tenant and job', async () => {
    const api = new MockApi({ ratePerSec: 1000, concurrency: 2, latencyMs: 200, outages: [{ atS: 0.3, forS: 0.3 }] });
    const url = await api.listen();
    try {
      const statuses = (await Promise.all([call(url, 'a', 'j1'), call(url, 'b', 'j2'), call(url, 'b', 'j3')])).map((r) => r.status).sort();
      expect(statuses).toEqual([200, 200, 429]);
      expect(api.stats().maxInFlight).toBe(2);
      await new Promise((r) => setTimeout(r, 150));
      expect((await call(url, 'a', 'j4')).status).toBe(503);
      expect(api.stats().perTenant.get('b')![0]).toEqual({ ok: 1, throttled: 1, failed: 0 });
      expect([...api.stats().jobsPerSecond[0]!].sort()).toEqual(['j1', 'j2', 'j3', 'j4']);
    } finally {
      await api.close();
    }
  });
});

describe('the report', () => {
  it("Jain's index, fair shares, quantiles, backoff", () => {
    expect(jainIndex([1, 1, 1, 1])).toBe(1);
    expect(jainIndex([1, 0, 0, 0])).toBe(0.25);
    expect(fairShares(100, [{ demand: 10, weight: 1 }, { demand: 10, weight: 1 }, { demand: 10, weight: 1 }, { demand: 200, weight: 1 }]).map((x) => Math.round(x))).toEqual([10, 10, 10, 70]);
    expect(fairShares(90, [{ demand: 100, weight: 2 }, { demand: 100, weight: 1 }])).toEqual([60, 30]);
    expect(quantile([5, 1, 3, 2, 4], 0.5)).toBe(3);
    expect(quantile([5, 1, 3, 2, 4], 0.99)).toBe(5);
    expect(backoffMs(1, 500, 10_000, () => 0)).toBe(250);
    expect(backoffMs(10, 500, 10_000, () => 1)).toBe(10_000);
  });

  it('measures outside warm-up and outages, and judges Janus by the scenario', () => {
    const sc = Scenario.parse({
      name: 't',
      durationS: 20,
      warmupS: 2,
      api: { ratePerSec: 10, concurrency: 5, latencyMs: 1, outages: [{ atS: 5, forS: 3 }] },
      tenants: [{ name: 'a', jobsPerSec: 20 }, { name: 'b', jobsPerSec: 20 }],
      workers: { concurrency: 4 },
      expect: { maxApi429s: 0, minJain: 0.9 },
    });
    // 2..4 and 13..19 (5..12 is the outage and its recovery)
    expect(measuredSeconds(sc)).toEqual([2, 3, 4, 13, 14, 15, 16, 17, 18, 19]);
    const series = (ok: number) => Array.from({ length: 20 }, () => ({ ok, throttled: 1, failed: 0 }));
    const r = report(sc, {
      pipeline: 'janus',
      api: { perTenant: new Map([['a', series(9)], ['b', series(1)]]), maxInFlight: 5, jobsPerSecond: [] },
      accepted: 10,
      refused: 0,
      succeeded: 9,
      dead: 0,
      admissionLatencyMs: [1, 2, 3],
    });
    expect(r.utilization).toBeCloseTo(1);
    expect(r.lost).toBe(1);
    expect(r.api429s).toBe(40);
    expect(r.jain).toBeLessThan(0.7);
    expect(table(sc, [r])).toContain('| jobs lost | 1 |');
    expect(chart(sc, [r])).toMatch(/^<svg/);
  });

  it('every shipped scenario is valid', () => {
    for (const name of ['default', 'overdeclared', 'smoke']) expect(loadScenario(name).name).toBe(name);
  });
});

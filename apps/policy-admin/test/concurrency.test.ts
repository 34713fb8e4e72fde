import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin('admin_concurrency');
});
afterAll(async () => {
  await h.close();
});

describe('concurrent writers with If-Match', () => {
  it('20 concurrent PUTs on one version: one applies, 19 get 412, nothing else is stored', async () => {
    const v0 = (await h.call('GET', '/v1/policy')).body.version as number;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => h.call('PUT', `/v1/tenants/first${i}`, { weight: i + 1 }, { 'if-match': String(v0) })),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 412)).toHaveLength(19);
    expect((await h.call('GET', '/v1/policy')).body.version).toBe(v0 + 1);
  });

  it('20 concurrent read-modify-write loops: every change lands once, versions strictly increase, each is audited, the rest were 412', async () => {
    const v0 = (await h.call('GET', '/v1/policy')).body.version as number;
    let conflicts = 0;
    const writer = async (i: number): Promise<number> => {
      for (;;) {
        const current = (await h.call('GET', '/v1/policy')).body as { version: number; tenants: Record<string, unknown> };
        const res = await h.call('PUT', '/v1/policy', { ...current, version: undefined, tenants: { ...current.tenants, [`w${i}`]: { weight: 1 } } }, { 'if-match': String(current.version) });
        if (res.status === 200) return res.body.version as number;
        expect(res.status).toBe(412);
        conflicts++;
      }
    };
    const versions = await Promise.all(Array.from({ length: 20 }, (_, i) => writer(i)));
    expect([...versions].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => v0 + i + 1));

    const final = (await h.call('GET', '/v1/policy')).body as { version: number; tenants: Record<string, unknown> };
    expect(final.version).toBe(v0 + 20);
    for (let i = 0; i < 20; i++) expect(final.tenants).toHaveProperty(`w${i}`);

    const audit = (await h.call('GET', '/v1/audit?limit=20')).body.entries as { fromVersion: number; toVersion: number; action: string }[];
    expect(audit.map((e) => e.toVersion)).toEqual(Array.from({ length: 20 }, (_, i) => v0 + 20 - i));
    for (const e of audit) {
      expect(e.action).toBe('policy.put');
      expect(e.toVersion).toBe(e.fromVersion + 1);
    }
    const metrics = await (await h.app.request('/metrics')).text();
    const counted = Number(/janus_policy_changes_total\{resource="policy",outcome="conflict",[^}]*\} (\d+)/.exec(metrics)?.[1] ?? -1);
    expect(counted).toBe(conflicts);
  });
});

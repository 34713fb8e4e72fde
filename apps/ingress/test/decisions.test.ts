import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { DecisionRecorder, LiveStatsBuffer } from '../src/decisions.js';
import { IngressMetrics } from '../src/metrics.js';

describe('decision counting', () => {
  it('shows every recorded decision in janus_admission_decisions_total when scraped, and counts on after a scrape', async () => {
    const registry = new Registry();
    const metrics = new IngressMetrics(registry);
    const recorder = new DecisionRecorder(metrics);
    recorder.record('admitted', 'admitted', 'email', 1);
    recorder.record('admitted', 'admitted', 'email', 2);
    recorder.record('rejected', 'dependency_rate', 'email', 4);
    recorder.record('admitted', 'admitted', 'sms', 1);
    const first = await metrics.decisions.get();
    const value = (m: typeof first, d: string, r: string, t: string) => m.values.find((v) => v.labels.decision === d && v.labels.reason === r && v.labels.job_type === t)?.value;
    expect(value(first, 'admitted', 'admitted', 'email')).toBe(3);
    expect(value(first, 'rejected', 'dependency_rate', 'email')).toBe(4);
    expect(value(first, 'admitted', 'admitted', 'sms')).toBe(1);
    recorder.record('admitted', 'admitted', 'email', 5);
    expect(await registry.metrics()).toContain('janus_admission_decisions_total{decision="admitted",reason="admitted",job_type="email"} 8');
    expect(value(await metrics.decisions.get(), 'rejected', 'dependency_rate', 'email')).toBe(4);
  });

  it('buffers live stats by outcome, reason and dependency list, and ignores what is not a limit decision', async () => {
    const writes: { decision: unknown; count: number }[] = [];
    const list = (...names: string[]) => names.map((name) => ({ name }));
    const deps: Record<string, readonly { name: string }[]> = { email: list('smtp'), digest: list('smtp'), sms: list('twilio', 'carrier') };
    const buffer = new LiveStatsBuffer(async (decision, count) => void writes.push({ decision, count }), (t) => deps[t], 60_000);
    buffer.record('admitted', 'admitted', 'email', 2);
    buffer.record('fail_open', 'store_unavailable', 'email', 1);
    buffer.record('admitted', 'admitted', 'sms', 1);
    buffer.record('rejected', 'dependency_rate', 'email', 3);
    buffer.record('rejected', 'tenant_rate', 'email', 1);
    buffer.record('duplicate', 'idempotency', 'email', 9);
    buffer.record('unavailable', 'redis_down', 'email', 9);
    buffer.record('admitted', 'admitted', 'unknown-type', 9);
    await buffer.stop();
    expect(writes).toHaveLength(4);
    expect(writes).toEqual(
      expect.arrayContaining([
        { decision: { outcome: 'admitted', dependencies: ['smtp'] }, count: 3 },
        { decision: { outcome: 'admitted', dependencies: ['twilio', 'carrier'] }, count: 1 },
        { decision: { outcome: 'rejected', reason: 'dependency_rate', dependencies: ['smtp'] }, count: 3 },
        { decision: { outcome: 'rejected', reason: 'tenant_rate', dependencies: ['smtp'] }, count: 1 },
      ]),
    );
  });
});

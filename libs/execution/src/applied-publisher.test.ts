import { describe, expect, it } from 'vitest';
import { AppliedBatch, MAX_APPLIED_PER_MESSAGE, type AppliedOutcome } from '@janus/contracts';
import { AppliedPublisher } from './outcomes.js';

const applied = (i: number, type = 'email', error?: string): AppliedOutcome => ({
  jobId: `job-${i}`,
  type,
  tenant: 'acme',
  attempt: 1,
  outcome: error === undefined ? 'succeeded' : 'failed',
  ...(error === undefined ? {} : { error }),
  reportId: `job-${i}.1.0123456789abcdef`,
  appliedAt: new Date(0).toISOString(),
});

describe('AppliedPublisher', () => {
  it('publishes the outcomes of one moment per job type, every message a valid AppliedBatch under 1 MB and 500 outcomes', async () => {
    const sent: { type: string; bytes: number; batch: AppliedBatch }[] = [];
    const out = new AppliedPublisher(async (type, batch) => {
      sent.push({ type, bytes: Buffer.byteLength(JSON.stringify(batch)), batch: AppliedBatch.parse(batch) });
    });
    // 1,200 successes, and 300 failures whose errors are 2,048 characters of what JSON escapes to 6 bytes each
    const worst = '\u0001'.repeat(2048);
    const all = [...Array.from({ length: 1200 }, (_, i) => applied(i)), ...Array.from({ length: 300 }, (_, i) => applied(2000 + i, 'sms', worst))];
    await Promise.all(all.map((a) => out.add(a)));
    expect(sent.flatMap((s) => s.batch.applied.map((a) => a.jobId)).sort()).toEqual(all.map((a) => a.jobId).sort());
    expect(sent.every((s) => s.batch.applied.every((a) => a.type === s.type))).toBe(true);
    expect(Math.max(...sent.map((s) => s.bytes))).toBeLessThan(1024 * 1024);
    expect(Math.max(...sent.map((s) => s.batch.applied.length))).toBeLessThanOrEqual(MAX_APPLIED_PER_MESSAGE);
    expect(sent.filter((s) => s.type === 'email')).toHaveLength(3);
  });

  it('a failed publish fails every outcome of its message (they are redelivered), and only those', async () => {
    let calls = 0;
    const out = new AppliedPublisher(async (type) => {
      calls += 1;
      if (type === 'sms') throw new Error('no ack');
    });
    const results = await Promise.allSettled([out.add(applied(1)), out.add(applied(2, 'sms')), out.add(applied(3, 'sms')), out.add(applied(4))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect(calls).toBe(2);
  });
});

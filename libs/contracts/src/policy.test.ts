import { describe, expect, it } from 'vitest';
import { BatchRequest, JobRequest, PolicyDocument } from './index.js';

describe('PolicyDocument', () => {
  it('fills the contract defaults', () => {
    const doc = PolicyDocument.parse({
      dependencies: { openai: { rate: { limit: 10, periodMs: 1000 } } },
      jobTypes: { summarize: { dependencies: [{ name: 'openai' }] } },
    });
    expect(doc.dependencies.openai?.failMode).toBe('closed');
    expect(doc.jobTypes.summarize).toMatchObject({
      timeoutMs: 30_000,
      retry: { maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 60_000 },
      maxPayloadBytes: 16_384,
      idempotencyWindowMs: 86_400_000,
      dependencies: [{ name: 'openai', cost: 1 }],
    });
    expect(doc.global.shedding).toEqual({ low: 0.8, normal: 1 });
  });

  it('names every bad field at once', () => {
    const result = PolicyDocument.safeParse({
      dependencies: { 'Bad Name': {}, ok: { rate: { limit: 0, periodMs: 1000 } } },
      jobTypes: { j: { dependencies: [{ name: 'missing' }] } },
    });
    expect(result.success).toBe(false);
    const paths = result.error?.issues.map((i) => i.path.join('.')) ?? [];
    expect(paths).toContain('dependencies.Bad Name');
    expect(paths).toContain('dependencies.ok.rate.limit');
  });

  it('rejects a job type naming an unknown dependency', () => {
    const result = PolicyDocument.safeParse({ jobTypes: { j: { dependencies: [{ name: 'missing' }] } } });
    expect(result.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['jobTypes.j.dependencies.0.name', 'unknown dependency "missing"'],
    ]);
  });
});

describe('JobRequest', () => {
  it('defaults priority and mode and rejects unknown fields', () => {
    expect(JobRequest.parse({ type: 'a' })).toEqual({ type: 'a', priority: 'normal', mode: 'now' });
    expect(JobRequest.safeParse({ type: 'a', extra: 1 }).success).toBe(false);
    expect(JobRequest.safeParse({ type: 'a', idempotencyKey: '' }).success).toBe(false);
  });

  it('cost is an int ≥ 1 (a cost of 0 would pass every costRate and budget check)', () => {
    expect(JobRequest.parse({ type: 'a', cost: 1 }).cost).toBe(1);
    for (const cost of [0, -1, 1.5]) {
      const r = JobRequest.safeParse({ type: 'a', cost });
      expect(r.success).toBe(false);
      expect(r.error?.issues.map((i) => i.path.join('.'))).toEqual(['cost']);
    }
    expect(BatchRequest.safeParse({ jobs: [{ type: 'a' }, { type: 'a', cost: 0 }] }).error?.issues.map((i) => i.path.join('.'))).toEqual(['jobs.1.cost']);
  });
});

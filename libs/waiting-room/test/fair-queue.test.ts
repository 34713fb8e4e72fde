import { describe, expect, it } from 'vitest';
import { FairQueue, type Blocks, type QueuedJob } from '../src/fair-queue.js';

const open: Blocks = { lane: () => false, tenant: () => false, tenantLane: () => false };

function fill(fq: FairQueue, tenant: string, n: number, opts: Partial<QueuedJob> & { start?: number } = {}): void {
  for (let i = 0; i < n; i += 1) {
    const seq = (opts.start ?? 0) + i;
    fq.add({ jobId: `${tenant}-${opts.type ?? 'x'}-${seq}`, attempt: 1, seq, tenant, type: opts.type ?? 'x', priority: opts.priority ?? 1, units: opts.units ?? 1, dueAt: opts.dueAt ?? 0 });
  }
}

function take(fq: FairQueue, n: number, blocks = open): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i += 1) {
    const next = fq.next(1, blocks);
    if (!next) break;
    out.push(next.job.tenant);
  }
  return out;
}

const count = (xs: string[], t: string) => xs.filter((x) => x === t).length;

describe('FairQueue (start-time fair queueing)', () => {
  it('equal weights share equally whatever each has queued', () => {
    const fq = new FairQueue(() => 1);
    fill(fq, 'flood', 1000);
    fill(fq, 'one', 50, { start: 1000 });
    fill(fq, 'two', 50, { start: 2000 });
    const got = take(fq, 90);
    expect([count(got, 'flood'), count(got, 'one'), count(got, 'two')]).toEqual([30, 30, 30]);
  });

  it('weights 3:1 give 75% / 25%; a cost-weighted job counts its units', () => {
    const fq = new FairQueue((t) => (t === 'heavy' ? 3 : 1));
    fill(fq, 'heavy', 500);
    fill(fq, 'light', 500, { start: 500 });
    const got = take(fq, 400);
    expect(count(got, 'heavy')).toBe(300);
    const costly = new FairQueue(() => 1);
    fill(costly, 'big', 100, { units: 4 });
    fill(costly, 'small', 100, { start: 100, units: 1 });
    const got2 = take(costly, 50);
    expect(count(got2, 'small')).toBe(40);
  });

  it('refused picks undone in reverse order leave the shares untouched', () => {
    const fq = new FairQueue((t) => (t === 'heavy' ? 3 : 1));
    fill(fq, 'heavy', 500);
    fill(fq, 'light', 500, { start: 500 });
    const admitted: string[] = [];
    for (let round = 0; round < 200; round += 1) {
      // Four picks, the first admitted, the rest refused by a limit.
      const picks = [fq.next(1, open)!, fq.next(1, open)!, fq.next(1, open)!, fq.next(1, open)!];
      admitted.push(picks[0]!.job.tenant);
      for (const p of picks.slice(1).reverse()) p.undo();
    }
    expect(count(admitted, 'heavy')).toBe(150);
  });

  it('within a tenant: priority first, then oldest; blocked lanes and tenants are skipped; not-due jobs wait', () => {
    const fq = new FairQueue(() => 1);
    fill(fq, 'a', 2, { priority: 2 });
    fill(fq, 'a', 1, { start: 10, priority: 0 });
    expect(fq.next(1, open)!.job.jobId).toBe('a-x-10');
    expect(fq.next(1, open)!.job.jobId).toBe('a-x-0');
    fill(fq, 'b', 1, { start: 20, type: 'y' });
    const laneX: Blocks = { ...open, lane: (type) => type === 'x' };
    expect(fq.next(1, laneX)!.job.jobId).toBe('b-y-20');
    expect(fq.next(1, { ...open, tenant: (t) => t === 'a' })).toBeUndefined();
    fill(fq, 'c', 1, { start: 30, dueAt: 500 });
    const earliest = { at: Infinity };
    expect(fq.next(1, { ...open, tenant: (t) => t === 'a' }, earliest)).toBeUndefined();
    expect(earliest.at).toBe(500);
    expect(fq.next(600, { ...open, tenant: (t) => t === 'a' })!.job.jobId).toBe('c-x-30');
  });

  it('a tenant that empties and comes back at once does not restart ahead of its share', () => {
    const fq = new FairQueue(() => 1);
    fill(fq, 'busy', 100);
    const got: string[] = [];
    let next = 1000;
    for (let i = 0; i < 60; i += 1) {
      // 'eager' has exactly one job waiting: it sends the next as soon as one is taken.
      if (!fq.has(`eager-x-${next}`, 1)) fill(fq, 'eager', 1, { start: (next += 1) });
      got.push(fq.next(1, open)!.job.tenant);
    }
    expect(Math.abs(count(got, 'busy') - count(got, 'eager'))).toBeLessThanOrEqual(2);
  });

  it('job types of one scope (one dependency) share one fair order: a tenant spreading over two of them gets one share, not two', () => {
    // 12 tries a round on the dependency (the dispatcher's window, per scope), whichever job type
    const round = (fq: FairQueue): string[] => {
      const got: string[] = [];
      const full: Blocks = { ...open, lane: (type) => type !== 'other' && got.length >= 12 };
      for (let next = fq.next(1, full); next; next = fq.next(1, full)) got.push(next.job.tenant);
      return got;
    };
    const scoped = new FairQueue(() => 1, (type) => (type === 'other' ? 'other' : 'api'));
    fill(scoped, 'splitter', 300, { type: 'x' });
    fill(scoped, 'splitter', 300, { type: 'y', start: 300 });
    fill(scoped, 'single', 300, { type: 'x', start: 600 });
    const shared = [...round(scoped), ...round(scoped), ...round(scoped)];
    expect([count(shared, 'splitter'), count(shared, 'single')]).toEqual([18, 18]);
    // a lane of another scope keeps its own order beside it
    fill(scoped, 'third', 5, { type: 'other', start: 5000 });
    expect(count(take(scoped, 5, { ...open, lane: (type) => type !== 'other' }), 'third')).toBe(5);
  });

  it('a tenant that empties one lane of a scope but still waits in another keeps its tag there', () => {
    const fq = new FairQueue(() => 1, () => 'api');
    fill(fq, 'a', 1, { type: 'x' });
    fill(fq, 'a', 100, { type: 'y', start: 1 });
    fill(fq, 'b', 100, { type: 'y', start: 1000 });
    const got = take(fq, 100);
    expect(Math.abs(count(got, 'a') - count(got, 'b'))).toBeLessThanOrEqual(1);
  });
});

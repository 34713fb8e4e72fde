import { messageIds, outcomeReportId, type AppliedBatch, type AppliedOutcome, type DeadLetter, type JobMessage, type LedgerEntry, type OutcomeEvent } from '@janus/contracts';

/** The subjects a workload is published on (`natsNames(ns)` from @janus/messaging fits). */
export interface SyntheticNames {
  readonly subjects: {
    readonly job: (jobType: string) => string;
    readonly outcome: (jobType: string) => string;
    readonly dead: (jobType: string) => string;
    readonly ledger: (tenant: string) => string;
    readonly applied: (jobType: string) => string;
  };
}

/**
 * A deterministic synthetic event stream for tests and benchmarks: what ingress, workers and the
 * scheduler would publish for `jobs` jobs, with the row counts it must end as.
 * 70% succeed at once; 20% fail, are retried and succeed; 10% fail, time out and go dead. Every
 * outcome report is followed by the scheduler's applied outcome for it — with `appliedPerMessage`
 * above 1, gathered per job type into AppliedBatch messages of that many, as the scheduler
 * publishes the outcomes it accepts at one moment.
 */
export interface SyntheticMessage {
  readonly stream: 'jobs' | 'outcomes' | 'dead' | 'ledger' | 'applied';
  readonly subject: string;
  readonly body: JobMessage | OutcomeEvent | DeadLetter | LedgerEntry | AppliedOutcome | AppliedBatch;
  readonly msgID: string;
}

export interface SyntheticWorkload {
  readonly messages: SyntheticMessage[];
  readonly expected: {
    readonly jobs: number;
    readonly attempts: number;
    readonly outcomeEvents: number;
    readonly deadLetters: number;
    readonly ledger: number;
    readonly succeeded: number;
    readonly dead: number;
  };
}

/** Small, fast, seeded PRNG (mulberry32): shuffles are reproducible from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

export function syntheticWorkload(names: SyntheticNames, jobCount: number, opts: { prefix?: string; startMs?: number; appliedPerMessage?: number } = {}): SyntheticWorkload {
  const prefix = opts.prefix ?? 'job';
  const t0 = opts.startMs ?? Date.UTC(2030, 0, 1);
  const messages: SyntheticMessage[] = [];
  let attempts = 0;
  let outcomes = 0;
  let dead = 0;
  let ledger = 0;
  let succeeded = 0;
  const iso = (ms: number) => new Date(ms).toISOString();
  const appliedPerMessage = Math.max(1, opts.appliedPerMessage ?? 1);
  const appliedByType = new Map<string, AppliedOutcome[]>();
  const flushApplied = (type: string): void => {
    const pending = appliedByType.get(type) ?? [];
    appliedByType.delete(type);
    if (pending.length === 0) return;
    const [only] = pending;
    if (appliedPerMessage === 1 && only) messages.push({ stream: 'applied', subject: names.subjects.applied(type), body: only, msgID: messageIds.applied(only.jobId, only.attempt) });
    else messages.push({ stream: 'applied', subject: names.subjects.applied(type), body: { applied: pending }, msgID: messageIds.appliedBatch(pending) });
  };

  for (let i = 0; i < jobCount; i++) {
    const jobId = `${prefix}-${i}`;
    const tenant = `t${i % 5}`;
    const type = `type${i % 3}`;
    const at = t0 + i;
    const admit = (attempt: number): void => {
      attempts++;
      const job: JobMessage = {
        jobId,
        type,
        tenant,
        attempt,
        priority: attempt === 1 ? 'normal' : 'low',
        payload: { n: i, attempt },
        admittedAt: iso(at + attempt * 1_000),
        lease: { id: `lease-${jobId}-${attempt}`, token: `token-${jobId}-${attempt}`, expiresAt: iso(at + attempt * 1_000 + 30_000) },
      };
      messages.push({ stream: 'jobs', subject: names.subjects.job(type), body: job, msgID: messageIds.attempt(jobId, attempt) });
      const reserve: LedgerEntry = { tenant, kind: 'reserve', amount: 10, jobId, attempt, at: iso(at + attempt * 1_000) };
      messages.push({ stream: 'ledger', subject: names.subjects.ledger(tenant), body: reserve, msgID: messageIds.ledger(jobId, attempt, 'reserve') });
      ledger++;
    };
    const finish = (attempt: number, outcome: OutcomeEvent['outcome']): void => {
      outcomes++;
      const event: OutcomeEvent = {
        jobId,
        attempt,
        leaseToken: `token-${jobId}-${attempt}`,
        outcome,
        ...(outcome === 'succeeded' ? { actualCost: 7 } : { error: `${outcome} on attempt ${attempt}` }),
      };
      messages.push({ stream: 'outcomes', subject: names.subjects.outcome(type), body: event, msgID: outcome === 'timed_out' ? messageIds.timedOut(jobId, attempt) : messageIds.attempt(jobId, attempt) });
      const applied: AppliedOutcome = {
        jobId,
        type,
        tenant,
        attempt,
        outcome,
        ...(event.error !== undefined ? { error: event.error } : {}),
        ...(event.actualCost !== undefined ? { actualCost: event.actualCost } : {}),
        reportId: outcomeReportId(event),
        appliedAt: iso(at + attempt * 1_000 + 400),
      };
      const pending = appliedByType.get(type) ?? [];
      pending.push(applied);
      appliedByType.set(type, pending);
      if (pending.length >= appliedPerMessage) flushApplied(type);
      const kind = outcome === 'succeeded' ? 'settle' : 'release';
      const entry: LedgerEntry = { tenant, kind, amount: outcome === 'succeeded' ? 7 : 10, jobId, attempt, at: iso(at + attempt * 1_000 + 500) };
      messages.push({ stream: 'ledger', subject: names.subjects.ledger(tenant), body: entry, msgID: messageIds.ledger(jobId, attempt, kind) });
      ledger++;
    };
    const kind = i % 10;
    admit(1);
    if (kind < 7) {
      finish(1, 'succeeded');
      succeeded++;
    } else if (kind < 9) {
      finish(1, 'failed');
      admit(2);
      finish(2, 'succeeded');
      succeeded++;
    } else {
      finish(1, 'failed');
      admit(2);
      finish(2, 'timed_out');
      const letter: DeadLetter = { jobId, type, tenant, attempts: 2, lastOutcome: 'timed_out', error: 'timed_out on attempt 2', payload: { n: i }, deadAt: iso(at + 5_000) };
      messages.push({ stream: 'dead', subject: names.subjects.dead(type), body: letter, msgID: messageIds.dead(jobId, 2) });
      dead++;
    }
  }
  for (const type of [...appliedByType.keys()]) flushApplied(type);
  return {
    messages,
    expected: { jobs: jobCount, attempts, outcomeEvents: outcomes, deadLetters: dead, ledger, succeeded, dead },
  };
}

import type { DeadLetter, LedgerEntry } from '@janus/contracts';
import { messageIds, publishJson, type NatsNames, type JetStreamTarget } from '@janus/messaging';

/** What the outcome and retry processors publish besides job messages: dead letters and ledger entries. */
export interface Publishing {
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  readonly now: () => number;
}

export async function publishDeadLetter(
  p: Publishing,
  job: { jobId: string; jobType: string; tenant: string; attempts: number; lastOutcome: DeadLetter['lastOutcome']; error?: string | undefined; payload?: DeadLetter['payload'] },
): Promise<void> {
  const dead: DeadLetter = {
    jobId: job.jobId,
    type: job.jobType,
    tenant: job.tenant,
    attempts: job.attempts,
    lastOutcome: job.lastOutcome,
    ...(job.error !== undefined ? { error: job.error.slice(0, 2048) } : {}),
    ...(job.payload !== undefined ? { payload: job.payload } : {}),
    deadAt: new Date(p.now()).toISOString(),
  };
  await publishJson(p.js, p.names.subjects.dead(job.jobType), dead, messageIds.dead(job.jobId, job.attempts));
}

export async function publishLedger(
  p: Publishing,
  job: { jobId: string; attempt: number; tenant: string },
  kind: LedgerEntry['kind'],
  amount: number,
): Promise<void> {
  const entry: LedgerEntry = { tenant: job.tenant, kind, amount, jobId: job.jobId, attempt: job.attempt, at: new Date(p.now()).toISOString() };
  await publishJson(p.js, p.names.subjects.ledger(job.tenant), entry, messageIds.ledger(job.jobId, job.attempt, kind));
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, sql } from 'drizzle-orm';
import { loadSettings } from '@janus/config';
import { JobView, outcomeReportId, type AppliedOutcome, type JobMessage, type LeaseExtended, type OutcomeEvent } from '@janus/contracts';
import { attempts, createDb, idempotencyKeys, jobs, migrate, outcomeEvents, type DbHandle } from '@janus/db';
import { natsNames } from '@janus/messaging';
import { dropPgNamespace, prng, shuffle, type SyntheticMessage, syntheticWorkload, testEnv, testNamespace } from '@janus/testing';
import { decodeMessage, type PersistEvent, type StreamKind } from './decode.js';
import { getJobView } from './job-view.js';
import { pruneHistory } from './prune.js';
import { reconcileJobStatus, storeBatch } from './store.js';
import { countRows } from './counts.js';
import type { RawMessage } from './decode.js';

const encoder = new TextEncoder();

/** A synthetic message as JetStream would hand it over (for driving the store without NATS). */
function toRawMessage(m: { subject: string; body: unknown }, seq: number, timestampMs = Date.now()): RawMessage {
  return { subject: m.subject, seq, data: encoder.encode(JSON.stringify(m.body)), timestampMs };
}

const ns = testNamespace('event_store');
const settings = loadSettings(testEnv(ns));
const names = natsNames(ns);
let handle: DbHandle;

beforeAll(async () => {
  await migrate(settings);
  handle = createDb(settings, { max: 6 });
});

afterAll(async () => {
  await handle.close();
  await dropPgNamespace(settings.databaseUrl, ns);
});

let seq = 0;
function decode(m: { stream: StreamKind; subject: string; body: unknown }): PersistEvent {
  seq += 1;
  return decodeMessage(names, m.stream, `S_${m.stream}`, toRawMessage(m, seq));
}

async function store(events: PersistEvent[]): Promise<void> {
  const r = await storeBatch(handle.db, events);
  await reconcileJobStatus(handle.db, r.followUp);
}

async function reset(): Promise<void> {
  await handle.pool.query('TRUNCATE jobs, attempts, outcome_events, dead_letters, budget_ledger, rejected_messages, idempotency_keys');
}

function jobMsg(jobId: string, attempt: number, extra: Partial<JobMessage> = {}): SyntheticMessage {
  const body: JobMessage = {
    jobId,
    type: 'email',
    tenant: 'acme',
    attempt,
    priority: attempt === 1 ? 'high' : 'low',
    payload: { to: 'x' },
    admittedAt: new Date(Date.UTC(2030, 0, 1, 0, 0, attempt)).toISOString(),
    lease: { id: `l-${attempt}`, token: `tok-${attempt}`, expiresAt: new Date(Date.UTC(2030, 0, 1, 0, 1, attempt)).toISOString() },
    ...extra,
  };
  return { stream: 'jobs', subject: names.subjects.job(body.type), body, msgID: `${jobId}.${attempt}` };
}

function outcomeMsg(jobId: string, attempt: number, outcome: OutcomeEvent['outcome'], extra: Partial<OutcomeEvent> = {}): SyntheticMessage {
  const body: OutcomeEvent = { jobId, attempt, leaseToken: `tok-${attempt}`, outcome, ...extra };
  return { stream: 'outcomes', subject: names.subjects.outcome('email'), body, msgID: `${jobId}.${attempt}` };
}

/** The scheduler's applied outcome for the report `outcomeMsg(jobId, attempt, outcome, extra)` would be. */
function appliedMsg(jobId: string, attempt: number, outcome: OutcomeEvent['outcome'], extra: Partial<OutcomeEvent> = {}): SyntheticMessage {
  const report = outcomeMsg(jobId, attempt, outcome, extra).body as OutcomeEvent;
  const body: AppliedOutcome = {
    jobId,
    type: 'email',
    tenant: 'acme',
    attempt,
    outcome,
    ...(report.error !== undefined ? { error: report.error } : {}),
    ...(report.actualCost !== undefined ? { actualCost: report.actualCost } : {}),
    reportId: outcomeReportId(report),
    appliedAt: new Date().toISOString(),
  };
  return { stream: 'applied', subject: names.subjects.applied('email'), body, msgID: `${jobId}.${attempt}.applied` };
}

function extendedMsg(jobId: string, attempt: number, expiresAt: string): { stream: StreamKind; subject: string; body: LeaseExtended } {
  const body: LeaseExtended = { jobId, type: 'email', tenant: 'acme', attempt, leaseId: `l-${attempt}`, expiresAt };
  return { stream: 'extensions', subject: names.subjects.extension('email'), body };
}

describe('decodeMessage', () => {
  const raw = (subject: string, text: string) => ({ subject, seq: 7, data: new TextEncoder().encode(text), timestampMs: 0 });
  const reasonOf = (kind: StreamKind, subject: string, text: string) => {
    const e = decodeMessage(names, kind, 'S', raw(subject, text));
    return e.kind === 'rejected' ? e.reason : undefined;
  };
  const good = JSON.stringify(jobMsg('j', 1).body);

  it('accepts a valid job message', () => {
    expect(reasonOf('jobs', names.subjects.job('email'), good)).toBeUndefined();
  });
  it('reads an AppliedBatch as its outcomes, in order; a batch with one bad element is rejected whole', () => {
    const one = appliedMsg('b1', 1, 'succeeded').body as AppliedOutcome;
    const two = appliedMsg('b2', 2, 'failed', { error: 'x' }).body as AppliedOutcome;
    const e = decodeMessage(names, 'applied', 'S', raw(names.subjects.applied('email'), JSON.stringify({ applied: [one, two] })));
    expect(e).toEqual({ kind: 'applied', seq: 7, bodies: [one, two] });
    expect(reasonOf('applied', names.subjects.applied('email'), JSON.stringify({ applied: [one, { ...two, type: 'sms' }] }))).toBe('subject job type email does not match body type sms');
    expect(reasonOf('applied', names.subjects.applied('email'), JSON.stringify({ applied: [] }))).toMatch(/^not an AppliedBatch: /);
    expect(reasonOf('applied', names.subjects.applied('email'), JSON.stringify(one))).toBeUndefined();
  });
  it('rejects bodies that are not JSON, fail the schema, or do not match the subject', () => {
    expect(reasonOf('jobs', names.subjects.job('email'), '{nope')).toBe('body is not JSON');
    expect(reasonOf('jobs', names.subjects.job('email'), '{"jobId":"x"}')).toMatch(/^not a JobMessage: /);
    expect(reasonOf('jobs', names.subjects.job('sms'), good)).toBe('subject job type sms does not match body type email');
    expect(reasonOf('jobs', `${ns}.jobs.email.extra`, good)).toMatch(/does not match/);
    expect(reasonOf('ledger', names.subjects.ledger('other'), JSON.stringify({ tenant: 'acme', kind: 'reserve', amount: 1, jobId: 'j', attempt: 1, at: new Date().toISOString() }))).toMatch(
      /tenant other does not match/,
    );
    expect(reasonOf('jobs', names.subjects.job('email'), good.replace('"to":"x"', '"to":"\\u0000"'))).toMatch(/NUL/);
    expect(reasonOf('jobs', names.subjects.job('email'), JSON.stringify({ ...jobMsg('j', 1).body, admittedAt: 'yesterday' }))).toBe('admittedAt is not a timestamp');
    const extension = JSON.stringify(extendedMsg('j', 1, '2030-01-01T00:00:00.000Z').body);
    expect(reasonOf('extensions', names.subjects.extension('email'), extension)).toBeUndefined();
    expect(reasonOf('extensions', names.subjects.extension('sms'), extension)).toBe('subject job type sms does not match body type email');
    expect(reasonOf('extensions', names.subjects.extension('email'), extension.replace('2030-01-01T00:00:00.000Z', 'soon'))).toMatch(/^not a LeaseExtended: expiresAt/);
  });
});

describe('values PostgreSQL cannot hold', () => {
  it('stores the text \\u0000 (an escaped backslash, not a NUL) as sent', async () => {
    await reset();
    const m = jobMsg('j-backslash', 1, { payload: { path: 'C:\\u0000', deeper: ['\\\\u0000'] } });
    const e = decode(m);
    expect(e.kind).toBe('job');
    await store([e]);
    const [row] = await handle.db.select({ payload: jobs.payload }).from(jobs).where(eq(jobs.jobId, 'j-backslash'));
    expect(row?.payload).toEqual({ path: 'C:\\u0000', deeper: ['\\\\u0000'] });
  });

  it('stores an outcome whose error holds a NUL (as U+FFFD) instead of losing it', async () => {
    await reset();
    // The worker's report and the scheduler's applied outcome both carry the worker's error.
    await store([
      decode(jobMsg('j-nul-error', 1)),
      decode(outcomeMsg('j-nul-error', 1, 'failed', { error: 'bad\u0000byte' })),
      decode(appliedMsg('j-nul-error', 1, 'failed', { error: 'bad\u0000byte' })),
    ]);
    const view = await getJobView(handle.db, 'acme', 'j-nul-error');
    expect(view?.attempts[0]).toMatchObject({ outcome: 'failed', error: 'bad\uFFFDbyte' });
  });

  it('rejects a NUL in a payload or an id, and a payload nested too deep, without throwing', () => {
    const nul = decode(jobMsg('j-nul', 1, { payload: { ['k\u0000']: 1 } }));
    expect(nul.kind === 'rejected' && nul.reason).toMatch(/NUL/);
    const nulId = decode(outcomeMsg('j\u0000', 1, 'succeeded'));
    expect(nulId.kind === 'rejected' && nulId.reason).toMatch(/NUL/);
    let deep: unknown = 1;
    for (let i = 0; i < 5_000; i++) deep = [deep];
    const m = jobMsg('j-deep', 1);
    const text = JSON.stringify({ ...m.body, payload: null }).replace('"payload":null', `"payload":${'['.repeat(5_000)}${']'.repeat(5_000)}`);
    const e = decodeMessage(names, 'jobs', 'S_jobs', { subject: m.subject, seq: 1, data: new TextEncoder().encode(text), timestampMs: 0 });
    expect(e.kind === 'rejected' && e.reason).toMatch(/nested deeper than 64 levels/);
  });
});

describe('storeBatch', () => {
  it('stores a batch twice (and its events split and reordered) as exactly one row each', async () => {
    await reset();
    const w = syntheticWorkload(names, 200);
    const events = w.messages.map(decode);
    await store(events);
    await store(events);
    const random = prng(42);
    const again = shuffle(w.messages.map(decode), random);
    for (let i = 0; i < again.length; i += 37) await store(again.slice(i, i + 37));
    const counts = await countRows(handle.db);
    expect(counts).toMatchObject({
      jobs: w.expected.jobs,
      attempts: w.expected.attempts,
      outcomeEvents: w.expected.outcomeEvents,
      deadLetters: w.expected.deadLetters,
      ledger: w.expected.ledger,
      succeeded: w.expected.succeeded,
      dead: w.expected.dead,
      completeAttempts: w.expected.attempts,
      rejected: 0,
    });
  });

  it("stores the scheduler's applied outcomes in batch messages (AppliedBatch) as the single ones, once each however redelivered", async () => {
    await reset();
    const w = syntheticWorkload(names, 200, { prefix: 'ab', appliedPerMessage: 17 });
    const batches = w.messages.filter((m) => m.stream === 'applied');
    expect(batches.length).toBeLessThan(w.expected.attempts / 10);
    await store(w.messages.map(decode));
    const again = shuffle(w.messages.map(decode), prng(7));
    for (let i = 0; i < again.length; i += 41) await store(again.slice(i, i + 41));
    expect(await countRows(handle.db)).toMatchObject({
      jobs: w.expected.jobs,
      attempts: w.expected.attempts,
      outcomeEvents: w.expected.outcomeEvents,
      succeeded: w.expected.succeeded,
      dead: w.expected.dead,
      completeAttempts: w.expected.attempts,
      rejected: 0,
    });
  });

  it('ends right when the outcome arrives before the admission', async () => {
    await reset();
    await store([decode(outcomeMsg('early', 1, 'succeeded', { actualCost: 3 })), decode(appliedMsg('early', 1, 'succeeded', { actualCost: 3 }))]);
    expect(await getJobView(handle.db, 'acme', 'early')).toBeUndefined();
    await store([decode(jobMsg('early', 1))]);
    const [row] = await handle.db.select().from(attempts).where(eq(attempts.jobId, 'early'));
    expect(row).toMatchObject({ attempt: 1, outcome: 'succeeded', actualCost: 3, leaseId: 'l-1' });
    expect(row?.admittedAt?.toISOString()).toBe('2030-01-01T00:00:01.000Z');
    const view = await getJobView(handle.db, 'acme', 'early');
    expect(view?.status).toBe('succeeded');
    // A failed attempt and a successful retry, both applied before either admission is read.
    await store([decode(appliedMsg('retried', 1, 'failed', { error: 'boom' })), decode(appliedMsg('retried', 2, 'succeeded'))]);
    await store([decode(jobMsg('retried', 2))]);
    expect(await getJobView(handle.db, 'acme', 'retried')).toMatchObject({ status: 'succeeded' });
    await store([decode(jobMsg('retried', 1))]);
    expect(await getJobView(handle.db, 'acme', 'retried')).toMatchObject({ status: 'succeeded' });
  });

  it('stores a timestamp in any form Date.parse takes as its instant, and rejects one out of range', async () => {
    await reset();
    await store([decode(jobMsg('tz', 1, { admittedAt: '2030-01-01T02:00:01+02:00' }))]);
    const [row] = await handle.db.select().from(attempts).where(eq(attempts.jobId, 'tz'));
    expect(row?.admittedAt?.toISOString()).toBe('2030-01-01T00:00:01.000Z');
    for (const admittedAt of ['2030-13-01T00:00:00.000Z', '2030-01-01T25:00:00.000Z', 'yesterday']) {
      expect(decode(jobMsg('bad-time', 1, { admittedAt }))).toMatchObject({ kind: 'rejected', reason: 'admittedAt is not a timestamp' });
    }
  });

  it('ends right when a failure or a dead letter arrives before the admission that creates the job', async () => {
    await reset();
    const letter = decode({ stream: 'dead', subject: names.subjects.dead('email'), body: { jobId: 'd-early', type: 'email', tenant: 'acme', attempts: 1, lastOutcome: 'failed', error: 'boom', deadAt: new Date().toISOString() } });
    await store([decode(appliedMsg('f-early', 1, 'failed', { error: 'boom' })), decode(appliedMsg('d-early', 1, 'failed', { error: 'boom' }))]);
    await store([letter]);
    await store([decode(jobMsg('f-early', 1)), decode(jobMsg('d-early', 1)), decode(jobMsg('plain', 1))]);
    expect(await getJobView(handle.db, 'acme', 'f-early')).toMatchObject({ status: 'retrying', lastError: 'boom' });
    expect(await getJobView(handle.db, 'acme', 'd-early')).toMatchObject({ status: 'dead', lastError: 'boom' });
    expect(await getJobView(handle.db, 'acme', 'plain')).toMatchObject({ status: 'admitted' });
  });

  it('a batch written again after a crash before its follow-up (redelivered) ends with the right status and marks', async () => {
    await reset();
    // The failure overtakes the admission; the admission's batch commits, then the persister dies.
    await store([decode(appliedMsg('crash', 1, 'failed', { error: 'boom' }))]);
    const admission = [decode(jobMsg('crash', 1))];
    await storeBatch(handle.db, admission);
    await store(admission); // redelivered: the job row exists now, its status is derived all the same
    expect(await getJobView(handle.db, 'acme', 'crash')).toMatchObject({ status: 'retrying', lastError: 'boom' });
    // A success and its report commit, then the persister dies before their follow-up.
    await store([decode(jobMsg('crash-ok', 1))]);
    const results = [decode(appliedMsg('crash-ok', 1, 'succeeded')), decode(outcomeMsg('crash-ok', 1, 'succeeded'))];
    await storeBatch(handle.db, results);
    expect(await getJobView(handle.db, 'acme', 'crash-ok')).toMatchObject({ status: 'admitted' });
    await store(results); // redelivered: everything is stored already
    expect(await getJobView(handle.db, 'acme', 'crash-ok')).toMatchObject({ status: 'succeeded' });
    const marked = await handle.db.select().from(outcomeEvents).where(eq(outcomeEvents.jobId, 'crash-ok'));
    expect(marked.map((r) => r.applied)).toEqual([true]);
  });

  it("keeps what a state rebuild needs: the producer's cost, the idempotency keys of attempt 1 (a later use of a key replaces it), the latest lease extension", async () => {
    await reset();
    const exp = (s: number) => new Date(Date.UTC(2030, 0, 2, 0, 0, s)).toISOString();
    const own = { key: 'order-1', fingerprint: 'fp-own', expiresAt: exp(1) };
    const batch = (index: number) => ({ key: 'batch-1', fingerprint: 'fp-batch', expiresAt: exp(2), index, size: 3 });
    await store([
      decode(jobMsg('k1', 1, { cost: 7, idempotency: own, batchIdempotency: batch(0) })),
      decode(jobMsg('k2', 1, { batchIdempotency: batch(2) })),
      // a retry carries the cost but never the keys
      decode(jobMsg('k1', 2, { cost: 7, idempotency: { ...own, fingerprint: 'ignored' } })),
      // an extension may overtake its admission; the latest expiry wins, in any order
      decode(extendedMsg('k2', 1, exp(30))),
      decode(extendedMsg('k2', 1, exp(20))),
      decode(extendedMsg('k1', 1, exp(10))),
    ]);
    await store([decode(extendedMsg('k1', 1, exp(5))), decode(extendedMsg('k1', 1, exp(40)))]);
    const costOf = async (jobId: string) => (await handle.db.select({ cost: jobs.cost }).from(jobs).where(eq(jobs.jobId, jobId)))[0]?.cost;
    expect(await costOf('k1')).toBe(7);
    expect(await costOf('k2')).toBeNull();
    const extendedUntil = async (jobId: string) =>
      (await handle.db.select({ t: attempts.leaseExtendedUntil, l: attempts.leaseId }).from(attempts).where(sql`${attempts.jobId} = ${jobId} AND ${attempts.attempt} = 1`))[0];
    expect(await extendedUntil('k1')).toEqual({ t: new Date(exp(40)), l: 'l-1' });
    expect(await extendedUntil('k2')).toEqual({ t: new Date(exp(30)), l: 'l-1' });
    const keys = await handle.db.select().from(idempotencyKeys).orderBy(idempotencyKeys.key, idempotencyKeys.position);
    expect(keys.map((k) => [k.key, k.position, k.batchSize, k.jobId, k.fingerprint, k.expiresAt.toISOString()])).toEqual([
      ['batch-1', 0, 3, 'k1', 'fp-batch', exp(2)],
      ['batch-1', 2, 3, 'k2', 'fp-batch', exp(2)],
      ['order-1', 0, null, 'k1', 'fp-own', exp(1)],
    ]);
    // the key used again (after its window) by a later job: the later admission replaces the row, an earlier one does not
    const later = jobMsg('k3', 1, { idempotency: { ...own, fingerprint: 'fp-later', expiresAt: exp(50) } });
    (later.body as { admittedAt: string }).admittedAt = exp(45);
    await store([decode(later)]);
    await store([decode(jobMsg('k1', 1, { cost: 7, idempotency: own }))]);
    const [row] = await handle.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, 'order-1'));
    expect(row).toMatchObject({ jobId: 'k3', fingerprint: 'fp-later' });
  });

  it('reports are records only: the applied outcome sets the attempt (first applied wins) and marks its report', async () => {
    await reset();
    await store([decode(jobMsg('j1', 1)), decode(outcomeMsg('j1', 1, 'succeeded', { leaseToken: 'zombie' }))]);
    // A report, whatever it says, changes no status: only what the scheduler applied does.
    expect((await getJobView(handle.db, 'acme', 'j1'))?.status).toBe('admitted');
    await store([decode(appliedMsg('j1', 1, 'failed', { error: 'boom' }))]);
    await store([decode(outcomeMsg('j1', 1, 'failed', { error: 'boom' })), decode(outcomeMsg('j1', 1, 'succeeded'))]);
    await store([decode(appliedMsg('j1', 1, 'succeeded'))]);
    const [row] = await handle.db.select().from(attempts).where(eq(attempts.jobId, 'j1'));
    expect(row).toMatchObject({ outcome: 'failed', error: 'boom' });
    expect((await getJobView(handle.db, 'acme', 'j1'))?.status).toBe('retrying');
    const reports = await handle.db.select().from(outcomeEvents).where(eq(outcomeEvents.jobId, 'j1'));
    expect(reports).toHaveLength(3);
    expect(reports.filter((r) => r.applied).map((r) => r.outcome)).toEqual(['failed']);
    expect(reports.every((r) => !JSON.stringify(r).includes('zombie'))).toBe(true);
  });

  it('derives status from the facts: admitted → retrying → admitted → succeeded; dead; never backwards', async () => {
    await reset();
    const status = async () => (await handle.db.select({ s: jobs.status }).from(jobs).where(eq(jobs.jobId, 'r')))[0]?.s;
    await store([decode(jobMsg('r', 1))]);
    expect(await status()).toBe('admitted');
    await store([decode(outcomeMsg('r', 1, 'failed'))]);
    expect(await status()).toBe('admitted'); // a report alone changes nothing
    await store([decode(appliedMsg('r', 1, 'failed'))]);
    expect(await status()).toBe('retrying');
    await store([decode(jobMsg('r', 2))]);
    expect(await status()).toBe('admitted');
    await store([decode(appliedMsg('r', 2, 'succeeded'))]);
    expect(await status()).toBe('succeeded');
    // A stale re-delivery of the first admission changes nothing.
    await store([decode(jobMsg('r', 1))]);
    expect(await status()).toBe('succeeded');

    const letter = { jobId: 'd', type: 'email', tenant: 'acme', attempts: 1, lastOutcome: 'failed' as const, deadAt: new Date().toISOString() };
    await store([decode({ stream: 'dead', subject: names.subjects.dead('email'), body: letter }), decode(appliedMsg('d', 1, 'failed'))]);
    await store([decode(jobMsg('d', 1))]);
    expect((await getJobView(handle.db, 'acme', 'd'))?.status).toBe('dead');
  });

  it("a dead letter that overtakes its last attempt's applied outcome waits for it: never dead without the reason", async () => {
    await reset();
    const letter = decode({ stream: 'dead', subject: names.subjects.dead('email'), body: { jobId: 'o', type: 'email', tenant: 'acme', attempts: 2, lastOutcome: 'failed', error: 'boom 2', deadAt: new Date().toISOString() } });
    await store([decode(jobMsg('o', 1)), decode(appliedMsg('o', 1, 'failed', { error: 'boom 1' })), decode(jobMsg('o', 2))]);
    await store([letter]);
    expect(await getJobView(handle.db, 'acme', 'o')).toMatchObject({ status: 'admitted', lastError: 'boom 1' });
    await store([decode(appliedMsg('o', 2, 'failed', { error: 'boom 2' }))]);
    expect(await getJobView(handle.db, 'acme', 'o')).toMatchObject({ status: 'dead', lastError: 'boom 2' });
  });

  it('a replayed job lives again: attempts after its dead letter are admitted, retrying, and its second death replaces the letter', async () => {
    await reset();
    const status = async () => (await handle.db.select({ s: jobs.status }).from(jobs).where(eq(jobs.jobId, 'rp')))[0]?.s;
    const letter = (attempts: number) => decode({ stream: 'dead', subject: names.subjects.dead('email'), body: { jobId: 'rp', type: 'email', tenant: 'acme', attempts, lastOutcome: 'failed', error: `died after ${attempts}`, deadAt: new Date().toISOString() } });
    await store([decode(jobMsg('rp', 1)), decode(appliedMsg('rp', 1, 'failed')), letter(1)]);
    expect(await status()).toBe('dead');
    // The replay (attempt 2) is admitted, fails, and is dead-lettered again after attempt 3.
    await store([decode(jobMsg('rp', 2))]);
    expect(await status()).toBe('admitted');
    await store([decode(appliedMsg('rp', 2, 'failed'))]);
    expect(await status()).toBe('retrying');
    await store([decode(jobMsg('rp', 3)), decode(appliedMsg('rp', 3, 'failed', { error: 'again' })), letter(3)]);
    expect(await status()).toBe('dead');
    // A stale copy of the first letter changes nothing.
    await store([letter(1)]);
    expect(await status()).toBe('dead');
    const dead = await handle.pool.query<{ attempts: number; error: string }>(`SELECT attempts, error FROM dead_letters WHERE job_id = 'rp'`);
    expect(dead.rows).toEqual([{ attempts: 3, error: 'died after 3' }]);
    expect(await getJobView(handle.db, 'acme', 'rp')).toMatchObject({ status: 'dead', lastError: 'again' });
  });

  it("GET's view merges the room: a dead job's replayed attempt is retrying while it waits, admitted once the room admitted it", async () => {
    await reset();
    await handle.pool.query(`DELETE FROM waiting_jobs`);
    const letter = decode({ stream: 'dead', subject: names.subjects.dead('email'), body: { jobId: 'm', type: 'email', tenant: 'acme', attempts: 1, lastOutcome: 'failed', deadAt: new Date().toISOString() } });
    await store([decode(jobMsg('m', 1)), decode(appliedMsg('m', 1, 'failed', { error: 'x' })), letter]);
    expect(await getJobView(handle.db, 'acme', 'm')).toMatchObject({ status: 'dead', lastError: 'x' });
    const later = new Date(Date.now() + 60_000);
    await handle.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, uncharged, created_at, queued_at, due_at, not_before, state, updated_at)
       VALUES ('m', 2, 'acme', 'email', 2, 'high', 1, now(), now(), now(), $1, 'queued', now())`,
      [later],
    );
    expect(await getJobView(handle.db, 'acme', 'm')).toMatchObject({ status: 'retrying', notBefore: later.toISOString() });
    // Another tenant sees nothing, room or not.
    expect(await getJobView(handle.db, 'other', 'm')).toBeUndefined();
    await handle.pool.query(`UPDATE waiting_jobs SET state = 'admitted' WHERE job_id = 'm'`);
    // The persister has not stored attempt 2 yet: the room knows better than its `dead`.
    expect((await getJobView(handle.db, 'acme', 'm'))?.status).toBe('admitted');
    await store([decode(jobMsg('m', 2))]);
    const v = await getJobView(handle.db, 'acme', 'm');
    expect(v?.status).toBe('admitted');
    expect(v?.notBefore).toBeUndefined();
    await handle.pool.query(`DELETE FROM waiting_jobs`);
  });

  it('a job that waited in the room was created when it arrived there, not when it was admitted', async () => {
    await reset();
    const arrived = new Date(Date.UTC(2029, 11, 31, 23, 59, 0));
    await handle.pool.query(
      `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, created_at, queued_at, due_at, not_before, state, updated_at)
       VALUES ('roomed', 1, 'acme', 'email', 1, 'high', $1, $1, $1, $1, 'admitted', now())`,
      [arrived],
    );
    await store([decode(jobMsg('roomed', 1)), decode(jobMsg('straight', 1))]);
    const rows = await handle.pool.query<{ job_id: string; created_at: Date }>(`SELECT job_id, created_at FROM jobs ORDER BY job_id`);
    expect(rows.rows.map((r) => [r.job_id, r.created_at.toISOString()])).toEqual([
      ['roomed', arrived.toISOString()],
      ['straight', '2030-01-01T00:00:01.000Z'],
    ]);
    await handle.pool.query(`DELETE FROM waiting_jobs`);
  });

  it('gets the job view for its own tenant only, in the contract shape', async () => {
    await reset();
    await store([decode(jobMsg('v', 2)), decode(jobMsg('v', 1)), decode(appliedMsg('v', 1, 'timed_out', { error: 'lease expired' }))]);
    const view = await getJobView(handle.db, 'acme', 'v');
    expect(JobView.parse(view)).toEqual(view);
    expect(view).toEqual({
      jobId: 'v',
      type: 'email',
      status: 'admitted',
      priority: 'high',
      createdAt: '2030-01-01T00:00:01.000Z',
      attempts: [
        { attempt: 1, admittedAt: '2030-01-01T00:00:01.000Z', outcome: 'timed_out', finishedAt: expect.any(String), error: 'lease expired' },
        { attempt: 2, admittedAt: '2030-01-01T00:00:02.000Z' },
      ],
      payload: { to: 'x' },
      lastError: 'lease expired',
    });
    expect(await getJobView(handle.db, 'other', 'v')).toBeUndefined();
    expect(await getJobView(handle.db, 'acme', 'missing')).toBeUndefined();
  });

  it('keeps rejected messages once per stream sequence', async () => {
    await reset();
    const bad = decodeMessage(names, 'jobs', 'S_jobs', { subject: names.subjects.job('email'), seq: 99, data: new TextEncoder().encode('not json'), timestampMs: 0 });
    await store([bad, bad]);
    await store([bad]);
    const rows = await handle.pool.query('SELECT stream, stream_seq, subject, reason, raw FROM rejected_messages');
    expect(rows.rows).toEqual([{ stream: 'S_jobs', stream_seq: '99', subject: names.subjects.job('email'), reason: 'body is not JSON', raw: 'not json' }]);
  });

  it('ends with the right status under concurrent writers in any order (4 writers, shuffled batches)', async () => {
    await reset();
    const w = syntheticWorkload(names, 400, { prefix: 'cc' });
    const events = shuffle(w.messages.map(decode), prng(7));
    const batches: PersistEvent[][] = [];
    for (let i = 0; i < events.length; i += 25) batches.push(events.slice(i, i + 25));
    let next = 0;
    const writer = async () => {
      for (let b = batches[next++]; b; b = batches[next++]) {
        for (;;) {
          try {
            await store(b);
            break;
          } catch (error) {
            // Deadlocks between concurrent writers are transient: the persister retries them too.
            if ((error as { cause?: { code?: string } }).cause?.code !== '40P01') throw error;
          }
        }
      }
    };
    await Promise.all([writer(), writer(), writer(), writer()]);
    const counts = await countRows(handle.db);
    expect(counts).toMatchObject({ jobs: w.expected.jobs, attempts: w.expected.attempts, succeeded: w.expected.succeeded, dead: w.expected.dead });
  });
});

describe('pruneHistory', () => {
  it('deletes finished jobs before the cutoff with their attempts, keeps in-flight jobs and the ledger', async () => {
    await reset();
    const w = syntheticWorkload(names, 50, { startMs: Date.UTC(2020, 0, 1) });
    await store(w.messages.map(decode));
    const key = (name: string, expiresAt: string) => ({ key: name, fingerprint: 'fp', expiresAt });
    await store([
      decode(jobMsg('inflight', 1, { admittedAt: '2020-01-01T00:00:00.000Z', idempotency: key('ended', '2020-01-02T00:00:00.000Z') })),
      decode(jobMsg('live-key', 1, { idempotency: key('live', new Date(Date.now() + 60_000).toISOString()) })),
    ]);
    await handle.pool.query(`INSERT INTO rejected_messages (stream, stream_seq, subject, reason, raw, received_at) VALUES ('S', 1, 's', 'r', 'x', '2020-01-01')`);
    const result = await pruneHistory(handle.db, { finishedJobsBefore: new Date(Date.UTC(2021, 0, 1)), rejectedBefore: new Date(Date.UTC(2021, 0, 1)), chunk: 7 });
    expect(result).toMatchObject({ jobs: 50, attempts: w.expected.attempts, deadLetters: w.expected.deadLetters, rejected: 1, ledger: 0, idempotencyKeys: 1 });
    expect((await handle.db.select().from(idempotencyKeys)).map((k) => k.key)).toEqual(['live']);
    await handle.pool.query(`DELETE FROM jobs WHERE job_id = 'live-key'; DELETE FROM attempts WHERE job_id = 'live-key'`);
    const counts = await countRows(handle.db);
    expect(counts).toMatchObject({ jobs: 1, attempts: 1, outcomeEvents: 0, deadLetters: 0, rejected: 0, ledger: w.expected.ledger });
    const left = await handle.db.execute(sql`SELECT job_id FROM jobs`);
    expect(left.rows).toEqual([{ job_id: 'inflight' }]);
  });
});

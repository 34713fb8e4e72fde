import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { AdmissionPipeline } from '@janus/admission';
import { compilePolicy, type AdmissionRequest } from '@janus/limiter';
import { waitFor } from '@janus/testing';
import { Dispatcher, WaitingStore, type DispatchDisposition } from '@janus/waiting-room';
import { openTestBed, type TestBed } from './harness.js';

/**
 * A waiting-room dispatcher that died after admitting a job but before recording it left the job's
 * row `dispatching`. The next leader must not put that row back where a producer's cancel takes it:
 * the job's message may be in JetStream, and it would run although the producer was told
 * "cancelled". Real PostgreSQL, Redis and JetStream; the dead leader's admission is made through the
 * same pipeline and idempotency key the dispatcher uses.
 */
let bed: TestBed;
let store: WaitingStore;
const dispatchers: Dispatcher[] = [];

beforeAll(async () => {
  bed = await openTestBed('room_doubt', {
    dependencies: { api: { concurrency: 10 }, gate: { concurrency: 1 } },
    tenants: { acme: {} },
    jobTypes: {
      call: { dependencies: [{ name: 'api' }], timeoutMs: 30_000 },
      gated: { dependencies: [{ name: 'gate' }], timeoutMs: 30_000 },
      old: { dependencies: [{ name: 'api' }], timeoutMs: 30_000 },
    },
  });
  store = new WaitingStore(bed.db.db);
}, 60_000);

afterAll(async () => {
  for (const d of dispatchers) await d.stop();
  await bed?.close();
});

/** A row the dead leader had taken (`dispatching`), as ingress stored it for mode `queue`. */
async function leftDispatching(jobId: string, type = 'call'): Promise<void> {
  await bed.db.pool.query(
    `INSERT INTO waiting_jobs (job_id, attempt, tenant, type, priority, job_priority, created_at, queued_at, due_at, not_before, state, updated_at)
     VALUES ($1, 1, 'acme', $2, 1, 'normal', now(), now(), now(), now(), 'dispatching', now())`,
    [jobId, type],
  );
}

/** What the dispatcher sends for such a row (dispatcher.ts #admit: a row without a producer key). */
function roomRequest(jobId: string, jobType = 'call'): AdmissionRequest {
  return { jobs: [{ jobId, tenant: 'acme', jobType, priority: 'normal', idempotency: { key: `room:${jobId}.1`, record: 'room', kind: 'retry' } }] };
}

async function rowState(jobId: string): Promise<string | undefined> {
  const r = await bed.db.pool.query<{ state: string }>(`SELECT state FROM waiting_jobs WHERE job_id = $1`, [jobId]);
  return r.rows[0]?.state;
}

async function jobMessages(): Promise<number> {
  return (await bed.jsm.streams.info(bed.names.streams.jobs)).state.messages;
}

/** A new leader whose NATS is "down" until `up.value` turns true: it leads, but decides nothing. */
async function newLeader(up: { value: boolean }, seen: DispatchDisposition[]): Promise<Dispatcher> {
  const d = new Dispatcher({
    namespace: bed.ns,
    db: bed.db.db,
    pool: bed.db.pool,
    limiter: bed.limiter,
    js: jetstream(bed.nc),
    nc: bed.nc,
    names: bed.names,
    natsUp: () => up.value,
    leadershipPollMs: 100,
    events: { dispatched: (disposition) => void seen.push(disposition) },
  });
  dispatchers.push(d);
  d.start();
  await waitFor(() => d.leading, 20_000, 20);
  return d;
}

describe('a row a dead dispatcher left dispatching', () => {
  it('with its admission made and published: not cancellable while the new leader cannot decide; then admitted once', async () => {
    await leftDispatching('doubt-1');
    const pipeline = new AdmissionPipeline({ limiter: bed.limiter, js: jetstream(bed.nc), names: bed.names });
    expect((await pipeline.run({ request: roomRequest('doubt-1'), payloads: [undefined] })).kind).toBe('admitted');
    const stored = await jobMessages();

    const up = { value: false };
    const seen: DispatchDisposition[] = [];
    const leader = await newLeader(up, seen);
    await waitFor(() => seen.length >= 2, 20_000, 20); // it tried (NATS "down") and will try again
    expect(await rowState('doubt-1')).toBe('dispatching');
    // The producer cancels: the job may run (its message is stored), so "cancelled" would be a lie.
    expect(await store.cancel('acme', 'doubt-1')).toBe('dispatching');

    up.value = true;
    await waitFor(async () => (await rowState('doubt-1')) === 'admitted', 20_000, 50);
    expect(await store.cancel('acme', 'doubt-1')).toBe('gone');
    expect(await jobMessages()).toBe(stored); // the replay published nothing: one message, one run
    await leader.stop();
  });

  it('with its admission published but never confirmed (in progress): kept dispatching until a worker\'s claim confirms it', async () => {
    await leftDispatching('doubt-2');
    const admitted = await bed.limiter.admit(roomRequest('doubt-2'));
    if (admitted.kind !== 'admitted' || admitted.jobs[0]?.lease === undefined) throw new Error(`not admitted: ${admitted.kind}`);
    const pipeline = new AdmissionPipeline({ limiter: bed.limiter, js: jetstream(bed.nc), names: bed.names });
    expect(await pipeline.publish([pipeline.jobMessage(admitted.jobs[0] as typeof admitted.jobs[0] & { lease: NonNullable<typeof admitted.jobs[0]['lease']> }, undefined)], 'jobs', false)).toBe('stored');

    const up = { value: true };
    const seen: DispatchDisposition[] = [];
    const leader = await newLeader(up, seen);
    await waitFor(() => seen.includes('in_progress'), 20_000, 20);
    expect(await rowState('doubt-2')).toBe('dispatching');
    expect(await store.cancel('acme', 'doubt-2')).toBe('dispatching');

    // A worker takes the stored message and claims its lease: that confirms the admission.
    expect((await bed.limiter.extend(admitted.jobs[0].lease.token, 1)).ok).toBe(true);
    await waitFor(async () => (await rowState('doubt-2')) === 'admitted', 20_000, 50);
    expect(await store.cancel('acme', 'doubt-2')).toBe('gone');
    await leader.stop();
  });

  it('whose admission was never made: once a limit refuses it (decided), it waits as queued and can be cancelled', async () => {
    // The gate's one slot is taken, so the new leader's admission is refused.
    const holder = await bed.limiter.admit({ jobs: [{ jobId: 'holder', tenant: 'acme', jobType: 'gated', priority: 'normal' }] });
    expect(holder.kind).toBe('admitted');
    await leftDispatching('doubt-3', 'gated');
    const seen: DispatchDisposition[] = [];
    const leader = await newLeader({ value: true }, seen);
    await waitFor(() => seen.includes('rejected'), 20_000, 20);
    await waitFor(async () => (await rowState('doubt-3')) === 'queued', 5_000, 20);
    expect(await store.cancel('acme', 'doubt-3')).toBe('cancelled');
    await leader.stop();
  });

  it('whose job type left the policy meanwhile: admitted if its earlier admission was made, else dead', async () => {
    await leftDispatching('doubt-4', 'old'); // admitted and published by the dead leader
    await leftDispatching('doubt-5', 'old'); // never admitted
    const pipeline = new AdmissionPipeline({ limiter: bed.limiter, js: jetstream(bed.nc), names: bed.names });
    expect((await pipeline.run({ request: roomRequest('doubt-4', 'old'), payloads: [undefined] })).kind).toBe('admitted');

    const { document, version } = bed.limiter.policy;
    const { old: _old, ...jobTypes } = document.jobTypes;
    bed.limiter.setPolicy(compilePolicy({ ...document, jobTypes }, version + 1));
    const seen: DispatchDisposition[] = [];
    const leader = await newLeader({ value: true }, seen);
    await waitFor(async () => (await rowState('doubt-5')) === 'dead', 20_000, 50);
    // Its message is in JetStream and may run (the type's workers consumer stays until drained): not dead.
    await waitFor(async () => (await rowState('doubt-4')) === 'admitted', 20_000, 50);
    await leader.stop();
  });

  it('a cancel racing a refused try (the row back in the room between its update and its read) cancels it', async () => {
    await leftDispatching('doubt-6');
    // The dispatcher's refused try puts the row back right after the cancel's update missed it.
    let flipped = false;
    const db = new Proxy(bed.db.db, {
      get(target, prop, receiver) {
        if (prop !== 'execute') return Reflect.get(target, prop, receiver);
        return async (query: Parameters<typeof target.execute>[0]) => {
          const result = await target.execute(query);
          if (!flipped) {
            flipped = true;
            await bed.db.pool.query(`UPDATE waiting_jobs SET state = 'queued' WHERE job_id = 'doubt-6'`);
          }
          return result;
        };
      },
    });
    expect(await new WaitingStore(db).cancel('acme', 'doubt-6')).toBe('cancelled');
    expect(await rowState('doubt-6')).toBe('cancelled');
  });
});

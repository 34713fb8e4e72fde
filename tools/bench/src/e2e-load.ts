// The load `bench:e2e` and `bench:e2e-floor` put on the loop they measure, and their BullMQ baseline,
// in one place so that both benchmarks measure alike.
import { randomBytes } from 'node:crypto';
import { Queue, Worker as BullWorker } from 'bullmq';
import { Redis } from 'ioredis';

/** 8 producers of 100-job requests, at most 20,000 jobs accepted and not yet completed, 256 jobs at once in the worker. */
export const E2E_LOAD = { batch: 100, producers: 8, maxOutstanding: 20_000, workerConcurrency: 256 } as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pid of the Redis server at `redisUrl` (its CPU is read from /proc). */
export async function redisPid(redisUrl: string): Promise<number | undefined> {
  const r = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const m = /process_id:(\d+)/.exec(await r.info('server'));
    return m ? Number(m[1]) : undefined;
  } finally {
    r.disconnect();
  }
}

/**
 * Submits closed loop for `seconds`: E2E_LOAD.producers in flight, at most E2E_LOAD.maxOutstanding
 * accepted and not `completed`. A submission that throws or admits nothing counts as refused.
 */
export async function closedLoop(seconds: number, submit: () => Promise<number>, completed: () => number): Promise<{ accepted: number; refused: number; firstAt: number }> {
  const firstAt = performance.now();
  const end = firstAt + seconds * 1000;
  let accepted = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: E2E_LOAD.producers }, async () => {
      while (performance.now() < end) {
        if (accepted - completed() >= E2E_LOAD.maxOutstanding) {
          await sleep(5);
          continue;
        }
        // (not `accepted += await submit()`: that reads `accepted` before the await, losing the other producers' jobs)
        const n = await submit().catch(() => 0);
        if (n > 0) accepted += n;
        else {
          refused += 1;
          await sleep(10);
        }
      }
    }),
  );
  return { accepted, refused, firstAt };
}

/** What a loop measurement is handed: a submission of one batch (resolves with the jobs added), and the jobs completed since the warm-up. */
export interface BullmqLoop {
  readonly submit: () => Promise<number>;
  readonly completed: () => number;
}

/**
 * BullMQ's add → complete loop, the baseline of `bench:e2e` and `bench:e2e-floor`: `Queue.addBulk`
 * of `batch` no-op jobs, a `Worker` with `concurrency` and a no-op processor, on the given Redis
 * (a prefix of its own, obliterated after). Warms up with five batches, then hands `measure` the
 * loop; cleans up whatever `measure` does.
 */
export async function withBullmqLoop<T>(redisUrl: string, opts: { readonly batch: number; readonly concurrency: number }, measure: (loop: BullmqLoop) => Promise<T>): Promise<T> {
  const prefix = `bench_bull_${randomBytes(3).toString('hex')}`;
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('noop', { connection, prefix });
  let done = 0;
  const worker = new BullWorker('noop', async () => undefined, { connection: workerConnection, prefix, concurrency: opts.concurrency, removeOnComplete: { count: 1000 } });
  worker.on('completed', () => {
    done += 1;
  });
  try {
    const jobs = Array.from({ length: opts.batch }, (_, i) => ({ name: 'noop', data: { i } }));
    const submit = async () => (await queue.addBulk(jobs)).length;
    for (let i = 0; i < 5; i++) await submit();
    const warm = 5 * opts.batch;
    while (done < warm) await sleep(20);
    return await measure({ submit, completed: () => done - warm });
  } finally {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    connection.disconnect();
    workerConnection.disconnect();
  }
}

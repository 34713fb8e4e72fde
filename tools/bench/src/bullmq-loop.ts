import { randomBytes } from 'node:crypto';
import { Queue, Worker as BullWorker } from 'bullmq';
import { Redis } from 'ioredis';

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
    while (done < warm) await new Promise((r) => setTimeout(r, 20));
    return await measure({ submit, completed: () => done - warm });
  } finally {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    connection.disconnect();
    workerConnection.disconnect();
  }
}

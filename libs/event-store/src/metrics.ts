import { Counter, Histogram, type Registry } from 'prom-client';

export interface PersisterMetrics {
  readonly stored: Counter<'stream'>;
  readonly rejected: Counter<'stream'>;
  readonly batchSize: Histogram<'stream'>;
  readonly batchSeconds: Histogram<'stream'>;
  readonly dbErrors: Counter<'stream' | 'kind'>;
}

export function createPersisterMetrics(registry: Registry): PersisterMetrics {
  return {
    stored: new Counter({
      name: 'janus_persister_events_stored_total',
      help: 'Messages committed to PostgreSQL (duplicates included: they end as the same rows) and acked, by stream',
      labelNames: ['stream'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'janus_persister_rejected_messages_total',
      help: 'Messages that can never be stored, kept in rejected_messages and acked, by stream',
      labelNames: ['stream'],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'janus_persister_batch_size',
      help: 'Messages per committed batch',
      labelNames: ['stream'],
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: 'janus_persister_batch_duration_seconds',
      help: 'Time to write and commit one batch (including the status reconcile)',
      labelNames: ['stream'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    dbErrors: new Counter({
      name: 'janus_persister_db_errors_total',
      help: 'Failed batch writes: transient (batch nak-ed with backoff) or permanent (batch split to find the message that cannot be stored)',
      labelNames: ['stream', 'kind'],
      registers: [registry],
    }),
  };
}
